"""``lm train``: files and log, resume equals never stopping, bf16, and clear errors for bad input."""

from __future__ import annotations

import json

import pytest
import torch

from liquid_memory.cli import main
from liquid_memory.lm.checkpoint import load_checkpoint
from liquid_memory.lm.data import batch_for_step, load_corpus
from liquid_memory.lm.distributed import DistInfo
from liquid_memory.lm.errors import TrainingSetupError
from liquid_memory.lm.train import TrainArgs, _check_args, lr_factor, run_training
from tests.numerics import rel_err

from .conftest import TINY_TRAIN, write_corpus


def test_train_writes_checkpoint_log_and_plot_and_learns(tiny_run):
    log = json.loads((tiny_run / "train_log.json").read_text())
    assert log["world_size"] == 1 and log["steps_done"] == 12 and len(log["steps"]) == 12
    assert log["model_config"]["mixer"] == "liquid" and log["parameters"] > 0
    assert [e["step"] for e in log["evals"]] == [6, 12]
    losses = [r["loss"] for r in log["steps"]]
    assert losses[-1] < losses[0] - 0.5  # ln(300) ≈ 5.7 at the start; a real drop, not noise
    assert log["evals"][-1]["heldout_loss"] < log["evals"][0]["heldout_loss"]
    assert (tiny_run / "loss.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    ckpt = load_checkpoint(tiny_run / "checkpoint.pt")
    assert ckpt.step == 12 and ckpt.config.vocab_size == ckpt.codec.vocab_size <= 300


def _args(corpus, out, **overrides) -> TrainArgs:
    fields = dict(data=str(corpus), out_dir=str(out), mixer="liquidnet", d_model=32, n_layers=2, n_heads=2,
                  short_conv=3, vocab_size=300, seq_len=32, batch_size=4, steps=6, warmup=2, eval_every=0,
                  checkpoint_every=0, progress=False, plot=False)  # fmt: skip
    fields.update(overrides)
    return TrainArgs(**fields)


def test_resume_gives_the_same_next_step_loss_as_uninterrupted(corpus, tmp_path):
    whole = run_training(_args(corpus, tmp_path / "whole"))
    run_training(_args(corpus, tmp_path / "split", stop_at=3))
    assert load_checkpoint(tmp_path / "split" / "checkpoint.pt").step == 3
    resumed = run_training(_args(corpus, tmp_path / "split", resume=True))
    expected = [r["loss"] for r in whole["log"]["steps"]]
    got = [r["loss"] for r in resumed["log"]["steps"]]
    assert len(got) == 6
    assert got[3] == pytest.approx(expected[3], rel=1e-6, abs=0)  # the next step after the interruption
    assert got == pytest.approx(expected, rel=1e-6, abs=0)
    for name, param in whole["model"].state_dict().items():
        assert rel_err(resumed["model"].state_dict()[name], param) < 1e-6, name


def test_bf16_autocast_trains(corpus, tmp_path):
    summary = run_training(_args(corpus, tmp_path, mixer="attention", steps=3, bf16=True, eval_every=3))
    assert all(torch.isfinite(torch.tensor(r["loss"])) for r in summary["log"]["steps"])
    assert summary["heldout_loss"] is not None


def test_batches_are_a_function_of_step_and_split_across_ranks():
    tokens = torch.arange(1000)
    x, y = batch_for_step(tokens, 5, seed=1, global_batch=4, seq_len=16)
    assert torch.equal(y[:, :-1], x[:, 1:])
    halves = [batch_for_step(tokens, 5, seed=1, global_batch=4, seq_len=16, rank=r, world=2)[0] for r in (0, 1)]
    assert torch.equal(torch.cat(halves), x)
    assert not torch.equal(batch_for_step(tokens, 6, seed=1, global_batch=4, seq_len=16)[0], x)


def test_learning_rate_schedule():
    args = TrainArgs(steps=100, warmup=10, min_lr_ratio=0.1)
    assert lr_factor(0, args) == pytest.approx(0.1) and lr_factor(9, args) == pytest.approx(1.0)
    assert lr_factor(55, args) == pytest.approx(0.55) and lr_factor(100, args) == pytest.approx(0.1)


def test_folder_split_holds_out_whole_files(tmp_path):
    corpus = load_corpus(write_corpus(tmp_path / "c", files=21))
    assert len(corpus.train) == 19 and len(corpus.heldout) == 2
    assert not set(corpus.train) & set(corpus.heldout)


def _run_cli(capsys, args) -> tuple[int, str]:
    code = main(args)
    err = capsys.readouterr().err
    assert "Traceback" not in err
    return code, err


def test_bad_data_is_a_clear_error(tmp_path, capsys):
    base = ["lm", "train", "--out-dir", str(tmp_path / "out"), "--steps", "2"] + TINY_TRAIN
    code, err = _run_cli(capsys, base + ["--data", str(tmp_path / "missing.txt")])
    assert code == 2 and "[LM601]" in err and "does not exist" in err
    (tmp_path / "empty.txt").write_text("   \n")
    code, err = _run_cli(capsys, base + ["--data", str(tmp_path / "empty.txt")])
    assert code == 2 and "[LM601]" in err and "empty" in err
    (tmp_path / "nothing").mkdir()
    code, err = _run_cli(capsys, base + ["--data", str(tmp_path / "nothing")])
    assert code == 2 and "[LM601]" in err
    (tmp_path / "short.txt").write_text("one line\nand another one\n")
    code, err = _run_cli(capsys, base + ["--data", str(tmp_path / "short.txt")])
    assert code == 2 and "[LM601]" in err and "fewer than one window" in err


def test_resume_with_another_configuration_is_refused(tiny_run, corpus, capsys):
    args = ["lm", "train", "--data", str(corpus), "--out-dir", str(tiny_run), "--steps", "14", "--resume"]
    code, err = _run_cli(capsys, args + TINY_TRAIN[:-1] + ["--d-model", "64", "--backend", "chunked"])
    assert code == 2 and "[LM603]" in err and "d_model=32 in the checkpoint but 64 asked" in err
    assert load_checkpoint(tiny_run / "checkpoint.pt").step == 12  # untouched


def test_bad_options_are_clear_errors(tmp_path, capsys, monkeypatch):
    with pytest.raises(TrainingSetupError, match="not divisible by the 2 processes"):
        _check_args(TrainArgs(batch_size=3), DistInfo(world=2))
    base = ["lm", "train", "--out-dir", str(tmp_path), "--data", str(write_corpus(tmp_path / "c", files=2))]
    code, err = _run_cli(capsys, base + TINY_TRAIN + ["--steps", "2", "--d-model", "33"])
    assert code == 2 and "[LM605]" in err and "divisible by n_heads" in err
    code, err = _run_cli(capsys, base + TINY_TRAIN + ["--steps", "2", "--out-norm-eps", "0"])
    assert code == 2 and "[LM605]" in err and "--out-norm-eps must be > 0" in err
    for name in ("LM_PRIVATE_KEY", "LM_PRIVATE_KEY_FILE", "LM_BACKEND"):
        monkeypatch.delenv(name, raising=False)
    code, err = _run_cli(capsys, base + TINY_TRAIN + ["--steps", "2"])  # compiled kernels without a licence
    assert code == 2 and "[LM101]" in err and "LM_BACKEND=reference" in err
    code, err = _run_cli(capsys, base + TINY_TRAIN + ["--steps", "2", "--resume"])
    assert code == 2 and "no checkpoint" in err


def test_lm_train_defaults_to_the_recommended_liquid_options(corpus, tmp_path):
    """``lm train`` builds the measured best LiquidLM (gate + eps 1e-2) unless told otherwise; old configs keep
    computing what they computed (``liquid_kwargs`` stays exactly what reaches LiquidMemory)."""
    from liquid_memory.models import RECOMMENDED_LIQUID_KWARGS, LiquidLM, LiquidLMConfig

    args = ["lm", "train", "--data", str(corpus), "--steps", "1", "--eval-every", "0", "--backend", "chunked"]
    assert main(args + ["--out-dir", str(tmp_path / "default")] + TINY_TRAIN) == 0
    ckpt = load_checkpoint(tmp_path / "default" / "checkpoint.pt")
    recommended = {"output_gate": True, "out_norm_eps": 1e-2, "qk_norm": True}
    assert ckpt.config.liquid_kwargs == RECOMMENDED_LIQUID_KWARGS == recommended
    layer = ckpt.build_model().blocks[0].mixer.memory
    assert layer.gate_proj is not None and layer.out_norm.eps == 1e-2 and layer.qk_norm
    assert TrainArgs(mixer="attention").model_config(300).liquid_kwargs == {}  # nothing for the other mixers
    plain = TrainArgs(output_gate=False, out_norm_eps=None, qk_norm=False).model_config(300)
    assert plain.liquid_kwargs == {}
    old = LiquidLMConfig.from_dict(plain.to_dict())  # a checkpoint written before the default changed
    assert old.liquid_kwargs == {} and LiquidLM(old).blocks[0].mixer.memory.gate_proj is None
    opt_out = ["--no-output-gate", "--out-norm-eps", "1e-5", "--no-qk-norm"]
    assert main(args + ["--out-dir", str(tmp_path / "plain")] + TINY_TRAIN + opt_out) == 0
    assert load_checkpoint(tmp_path / "plain" / "checkpoint.pt").config.liquid_kwargs == {"out_norm_eps": 1e-5}


def test_lm_train_conv_qkv_and_qk_norm_reach_the_model(corpus, tmp_path):
    """``--conv-qkv`` / ``--qk-norm`` reach the saved config and the model (MQAR's recall configuration as an LM)."""
    args = ["lm", "train", "--data", str(corpus), "--steps", "1", "--eval-every", "0", "--backend", "chunked"]
    qkv = ["--short-conv", "4", "--conv-qkv", "--qk-norm"]
    assert main(args + ["--out-dir", str(tmp_path / "qkv")] + qkv + TINY_TRAIN) == 0
    ckpt = load_checkpoint(tmp_path / "qkv" / "checkpoint.pt")
    assert ckpt.config.conv_qkv and ckpt.config.short_conv == 4 and ckpt.config.liquid_kwargs["qk_norm"] is True
    assert ckpt.build_model().blocks[0].mixer.memory.qk_norm
    assert TrainArgs().model_config(300).conv_qkv is False  # off unless asked
    assert main(args + ["--out-dir", str(tmp_path / "bad"), "--conv-qkv"] + TINY_TRAIN) == 2  # needs --short-conv


def test_liquid_flags_and_liquid_kwargs_are_inverse_for_every_bench_model():
    """``lm bench`` trains its named rows through lm train's flags: flags → kwargs → flags must give back exactly
    the row's LiquidMemory options (an option lost or invented on the way would train another model)."""
    from benchmarks.lm.comparison import BENCH_MODELS
    from liquid_memory.models import RECOMMENDED_LIQUID_KWARGS

    rows = [spec.get("liquid_kwargs", {}) for spec in BENCH_MODELS.values() if spec["mixer"] == "liquid"]
    for kwargs in [*rows, RECOMMENDED_LIQUID_KWARGS]:
        assert TrainArgs(**TrainArgs.liquid_flags(kwargs)).liquid_kwargs() == kwargs
    assert TrainArgs().liquid_kwargs() == RECOMMENDED_LIQUID_KWARGS  # lm train's default is the recommendation
    assert TrainArgs(mixer="attention").liquid_kwargs() == {}
    with pytest.raises(ValueError, match="no flag"):
        TrainArgs.liquid_flags({"decay_rank": 4})


def test_memory_short_conv_flag_reaches_liquid_memory_and_stays_off_by_default():
    """``--memory-short-conv K`` is LiquidMemory's own q/k/v convolution (liquid_kwargs ``short_conv``), apart from the
    model-level ``--short-conv``; without it LiquidLM builds LiquidMemory with ``short_conv=0``."""
    from liquid_memory.models import LiquidLM

    config = TrainArgs(memory_short_conv=4, d_model=32, n_layers=1, n_heads=2).model_config(vocab_size=40)
    assert config.liquid_kwargs["short_conv"] == 4 and config.short_conv == 0
    assert LiquidLM(config).blocks[0].mixer.memory.short_conv == 4
    plain = TrainArgs(d_model=32, n_layers=1, n_heads=2).model_config(vocab_size=40)
    assert "short_conv" not in plain.liquid_kwargs and LiquidLM(plain).blocks[0].mixer.memory.qkv_conv is None
