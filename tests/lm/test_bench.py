"""``lm bench`` smoke test on a tiny setting: every mixer trained on the same tokens, table/JSON/PNG written."""

from __future__ import annotations

import json

from liquid_memory.cli import main
from tests.dev_licence import dev_licence


def test_lm_bench_tiny(corpus, tmp_path, monkeypatch, capsys):
    from liquid_memory.licensing import reset_cache

    monkeypatch.setenv("LM_PRIVATE_KEY", dev_licence())
    monkeypatch.delenv("LM_BACKEND", raising=False)
    reset_cache()
    out = tmp_path / "bench"
    args = ["lm", "bench", "--mixers", "liquid,liquid-conv,liquid-gate,liquidnet,attention", "--data", str(corpus),
            "--out-dir", str(out), "--d-model", "32", "--n-layers", "1",
            "--n-heads", "2", "--vocab-size", "300", "--seq-len", "32", "--batch-size", "2", "--steps", "2",
            "--warmup", "1", "--throughput-lens", "32,64", "--throughput-tokens", "128", "--decode-contexts", "16,64",
            "--decode-tokens", "2", "--repeats", "1", "--no-progress"]  # fmt: skip
    assert main(args) == 0
    reset_cache()
    results = json.loads((out / "lm_bench.json").read_text())
    runs = results["runs"]
    assert list(runs) == ["liquid", "liquid-conv", "liquid-gate", "liquidnet", "attention"]
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
    trained = json.loads((out / "runs" / "liquid-gate" / "train_log.json").read_text())
    assert trained["model_config"]["liquid_kwargs"] == {"output_gate": True} == runs["liquid-gate"]["liquid_kwargs"]
    for mixer in ("liquid", "liquid-conv", "liquid-gate", "liquidnet"):  # … the recurrent states do not
        sizes = [g["state_bytes"] for g in runs[mixer]["generation"]]
        assert sizes[0] == sizes[1]
    both = ("ppl_ratio_liquid_over_attention", "ppl_ratio_liquid_over_attention[liquid-conv]")
    assert set(results["targets"]) >= {*both, "liquid_decode_flat"}
    assert (out / "lm_bench.png").read_bytes()[:4] == b"\x89PNG"
    assert "| liquid |" in capsys.readouterr().out


def test_lm_bench_unknown_model_is_a_usage_error(capsys):
    import pytest

    with pytest.raises(SystemExit) as exit_info:
        main(["lm", "bench", "--mixers", "liquid,transformer"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "transformer" in err and "liquid-conv" in err and "Traceback" not in err
