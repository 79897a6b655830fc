"""``python -m benchmarks lm`` smoke test, tiny setting: every mixer trained on the same tokens, table, JSON, PNG."""

from __future__ import annotations

import json

from benchmarks.__main__ import main
from tests.dev_licence import dev_licence


def test_lm_bench_tiny(corpus, tmp_path, monkeypatch, capsys):
    from liquid_memory.licensing import reset_cache

    monkeypatch.setenv("LM_PRIVATE_KEY", dev_licence())
    monkeypatch.delenv("LM_BACKEND", raising=False)
    reset_cache()
    out = tmp_path / "bench"
    models = "liquid,liquid-conv,liquid-gate,liquid-gate-eps,liquidnet,attention"
    args = ["lm", "--mixers", models, "--data", str(corpus),
            "--out-dir", str(out), "--d-model", "32", "--n-layers", "1",
            "--n-heads", "2", "--vocab-size", "300", "--seq-len", "32", "--batch-size", "2", "--steps", "2",
            "--warmup", "1", "--throughput-lens", "32,64", "--throughput-tokens", "128", "--decode-contexts", "16,64",
            "--decode-tokens", "2", "--repeats", "1", "--no-progress"]  # fmt: skip
    assert main(args) == 0
    reset_cache()
    results = json.loads((out / "lm_bench.json").read_text())
    runs = results["runs"]
    assert list(runs) == ["liquid", "liquid-conv", "liquid-gate", "liquid-gate-eps", "liquidnet", "attention"]
    assert results["liquid_backend"] == "cpp"
    conv = runs["liquid-conv"]
    assert (conv["mixer"], conv["short_conv"], runs["liquid"]["short_conv"]) == ("liquid", 4, 0)
    counts = [run["parameters"] for run in runs.values()]
    assert max(counts) / min(counts) < 1.02  # matched by the SwiGLU width
    for run in runs.values():
        assert run["heldout_ppl"] > 1 and [r["seq_len"] for r in run["train_throughput"]] == [32, 64]
        assert [g["context"] for g in run["generation"]] == [16, 64]
    kv = [g["state_bytes"] for g in runs["attention"]["generation"]]
    assert kv[1] == 4 * kv[0]  # the KV cache grows with the context …
    trained = json.loads((out / "runs" / "liquid-gate" / "seed0" / "train_log.json").read_text())
    assert trained["model_config"]["liquid_kwargs"] == {"output_gate": True} == runs["liquid-gate"]["liquid_kwargs"]
    eps_run = json.loads((out / "runs" / "liquid-gate-eps" / "seed0" / "train_log.json").read_text())
    assert eps_run["model_config"]["liquid_kwargs"] == {"output_gate": True, "out_norm_eps": 1e-2}
    assert eps_run["train_args"]["out_norm_eps"] == 1e-2 and trained["train_args"]["out_norm_eps"] is None
    for mixer in models.split(",")[:-1]:  # … the recurrent states do not
        sizes = [g["state_bytes"] for g in runs[mixer]["generation"]]
        assert sizes[0] == sizes[1]
    both = ("ppl_ratio_liquid_over_attention", "ppl_ratio_liquid_over_attention[liquid-conv]")
    assert set(results["targets"]) >= {*both, "liquid_decode_flat"}
    assert (out / "lm_bench.png").read_bytes()[:4] == b"\x89PNG"
    assert "| liquid |" in capsys.readouterr().out


def test_lm_bench_unknown_model_is_a_usage_error(capsys):
    import pytest

    with pytest.raises(SystemExit) as exit_info:
        main(["lm", "--mixers", "liquid,transformer"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "transformer" in err and "liquid-conv" in err and "Traceback" not in err


def _tiny_bench(corpus, out, *extra: str) -> list[str]:
    return ["lm", "--mixers", "liquid,attention", "--data", str(corpus), "--out-dir", str(out),
            "--d-model", "32", "--n-layers", "1", "--n-heads", "2", "--vocab-size", "300", "--seq-len", "32",
            "--batch-size", "2", "--steps", "2", "--warmup", "1", "--throughput-lens", "", "--decode-contexts", "",
            "--no-progress", *extra]  # fmt: skip


def test_lm_bench_seeds_and_reuse(corpus, tmp_path, monkeypatch, capsys):
    """Several seeds: per-seed figures, exp(mean loss), paired ratios; --reuse-runs takes only identical runs."""
    import math

    from liquid_memory.licensing import reset_cache

    monkeypatch.setenv("LM_PRIVATE_KEY", dev_licence())
    monkeypatch.delenv("LM_BACKEND", raising=False)
    reset_cache()
    out = tmp_path / "bench"
    assert main(_tiny_bench(corpus, out, "--seeds", "0,1")) == 0
    first = json.loads((out / "lm_bench.json").read_text())
    for run in first["runs"].values():
        seeds = run["seeds"]
        assert [s["seed"] for s in seeds] == [0, 1] and not any(s["reused"] for s in seeds)
        assert seeds[0]["heldout_loss"] != seeds[1]["heldout_loss"]  # the seed changes init and batches
        assert math.isclose(run["heldout_ppl"], math.exp((seeds[0]["heldout_loss"] + seeds[1]["heldout_loss"]) / 2))
    target = first["targets"]["ppl_ratio_liquid_over_attention"]
    liquid, attention = first["runs"]["liquid"]["seeds"], first["runs"]["attention"]["seeds"]
    for pair, mine, theirs in zip(target["per_seed"], liquid, attention, strict=True):
        assert math.isclose(pair["ratio"], mine["heldout_ppl"] / theirs["heldout_ppl"], rel_tol=1e-9)
    assert "3 seeds" not in (out / "lm_bench.md").read_text() and "2 seeds" in (out / "lm_bench.md").read_text()

    capsys.readouterr()
    assert main(_tiny_bench(corpus, out, "--seeds", "0,1,2", "--reuse-runs")) == 0
    again = json.loads((out / "lm_bench.json").read_text())
    for mixer, run in again["runs"].items():
        assert [s["reused"] for s in run["seeds"]] == [True, True, False]
        for old, new in zip(first["runs"][mixer]["seeds"], run["seeds"][:2], strict=False):
            assert (old["heldout_loss"], old["train_seconds"]) == (new["heldout_loss"], new["train_seconds"])
    assert capsys.readouterr().out.count("reusing the finished run") == 4

    # a log written before lm train had the LiquidMemory flags (or before their defaults changed) is still reused:
    # its model config says what it computed
    for mixer in ("liquid", "attention"):
        log_path = out / "runs" / mixer / "seed0" / "train_log.json"
        log = json.loads(log_path.read_text())
        for flag in ("output_gate", "out_norm_eps", "conv_qkv"):
            log["train_args"].pop(flag)
        log_path.write_text(json.dumps(log))
    assert main(_tiny_bench(corpus, out, "--seeds", "0", "--reuse-runs")) == 0
    assert capsys.readouterr().out.count("reusing the finished run") == 2
    log_path = out / "runs" / "liquid" / "seed0" / "train_log.json"  # ... but not one that computed something else
    log = json.loads(log_path.read_text())
    log["model_config"]["liquid_kwargs"] = {"output_gate": True}
    log_path.write_text(json.dumps(log))
    assert main(_tiny_bench(corpus, out, "--seeds", "0", "--reuse-runs")) == 0
    assert capsys.readouterr().out.count("reusing the finished run") == 1  # attention only

    assert main(_tiny_bench(corpus, out, "--seeds", "0", "--reuse-runs", "--lr", "1e-3")) == 0
    changed = json.loads((out / "lm_bench.json").read_text())
    assert all(not run["seeds"][0]["reused"] for run in changed["runs"].values())  # other lr: trained again
    reset_cache()


def test_lm_bench_repeated_seed_is_a_usage_error(capsys):
    import pytest

    with pytest.raises(SystemExit) as exit_info:
        main(["lm", "--seeds", "0,0"])
    assert exit_info.value.code == 2 and "no repeats" in capsys.readouterr().err


def test_lm_bench_speed_only_reports_no_training(tmp_path, monkeypatch):
    """``--steps 0`` (untrained weights, speed columns only): the table says so instead of 'Data: None', and the
    figure has the speed panels without an empty loss panel (matplotlib warned about its empty legend)."""
    import warnings

    from liquid_memory.licensing import reset_cache

    monkeypatch.setenv("LM_PRIVATE_KEY", dev_licence())
    monkeypatch.delenv("LM_BACKEND", raising=False)
    reset_cache()
    out = tmp_path / "speed"
    args = ["lm", "--mixers", "liquid,attention", "--out-dir", str(out), "--steps", "0",
            "--d-model", "32", "--n-layers", "1", "--n-heads", "2", "--vocab-size", "300", "--seq-len", "32",
            "--throughput-lens", "32", "--throughput-tokens", "64", "--decode-contexts", "16",
            "--decode-tokens", "2", "--repeats", "1", "--no-progress"]  # fmt: skip
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        assert main(args) == 0
    reset_cache()
    table = (out / "lm_bench.md").read_text()
    assert "Speed only (--steps 0)" in table and "None" not in table
    assert (out / "lm_bench.png").read_bytes()[:4] == b"\x89PNG"
