"""Training really learns MQAR (tiny setting), the sweep file resumes, the CLI writes JSON + PNG + table."""

from __future__ import annotations

import json

import pytest
import torch

from benchmarks.__main__ import main as benchmarks_main
from benchmarks.mqar.data import MQARTask
from benchmarks.mqar.models import MODEL_SPECS, ModelShape, answer_logits, build_model
from benchmarks.mqar.train import TrainConfig, lr_factor, train_mqar

TASK = MQARTask(seq_len=32, num_kv_pairs=4, vocab_size=64)
SHAPE = ModelShape(d_model=32, n_layers=2, n_heads=2, backend="chunked")
TINY = ["--settings", "32:4:32", "--vocab", "64", "--batch-size", "32", "--eval-examples", "64"]


@pytest.fixture(autouse=True)
def _one_thread():
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


def test_attention_learns_tiny_mqar_and_records_the_curve() -> None:
    """From near chance (1/16 values) to >= 0.9 held-out accuracy: the loop, loss masking and eval are wired right."""
    task = MQARTask(seq_len=16, num_kv_pairs=2, vocab_size=32)
    cfg = TrainConfig(batch_size=32, max_steps=500, lr=3e-3, warmup_steps=20, eval_every=25, eval_examples=64,
                      stop_accuracy=0.9)  # fmt: skip
    model = build_model(MODEL_SPECS["attention"], SHAPE, task, seed=0)
    torch.set_num_threads(1)
    result = train_mqar(model, answer_logits, task, cfg)
    accs = [row["accuracy"] for row in result.history]
    assert accs[0] < 0.4, accs  # not solved after 25 steps: the task is not trivial
    assert result.best_accuracy >= 0.9, accs
    assert result.steps_to["0.90"] is not None and result.steps_to["0.90"] % cfg.eval_every == 0
    assert result.steps_to["0.50"] <= result.steps_to["0.90"]
    assert result.stop_reason == "reached 0.9" and result.steps_run < cfg.max_steps


def test_max_steps_and_no_learning_is_reported_as_such() -> None:
    cfg = TrainConfig(batch_size=8, max_steps=3, lr=1e-9, warmup_steps=0, eval_every=2, eval_examples=16)
    model = build_model(MODEL_SPECS["liquidnet"], SHAPE, TASK, seed=0)
    result = train_mqar(model, answer_logits, TASK, cfg)
    assert [row["step"] for row in result.history] == [2, 3]  # every eval_every steps and the last step
    assert result.stop_reason == "max_steps" and result.steps_run == 3
    assert result.steps_to["0.90"] is None and result.best_accuracy < 0.5


def test_lr_schedule_is_warmup_then_constant() -> None:
    cfg = TrainConfig(warmup_steps=4)
    assert [lr_factor(s, cfg) for s in range(6)] == [0.25, 0.5, 0.75, 1.0, 1.0, 1.0]


def test_cli_writes_json_png_table_and_skips_finished_runs(tmp_path, capsys) -> None:
    out = tmp_path / "mqar.json"
    argv = ["mqar", *TINY, "--models", "attention,liquid", "--max-steps", "4", "--eval-every", "2",
            "--backend", "chunked", "--json", str(out)]  # fmt: skip
    assert benchmarks_main(argv) == 0
    text = capsys.readouterr().out
    doc = json.loads(out.read_text())
    assert [r["model"] for r in doc["runs"]] == ["attention", "liquid"]
    assert len(doc["commands"]) == 1 and doc["commands"][0].endswith("python -m benchmarks " + " ".join(argv))
    run = doc["runs"][1]
    assert run["state_size"] == 2 * 32 * 32 // 2 and run["parameters"] > 0 and len(run["history"]) == 2
    assert "| T32-kv4-d32-L2-H2-V64 | liquid |" in text and "steps→0.90" in text
    assert out.with_suffix(".png").stat().st_size > 10_000
    assert benchmarks_main(argv) == 0  # resumed: nothing retrained
    assert "already in" in capsys.readouterr().out
    assert len(json.loads(out.read_text())["runs"]) == 2
    merged = tmp_path / "merged.json"
    assert benchmarks_main(["mqar-report", str(out), "--json", str(merged)]) == 0
    assert "steps_ratio_vs_attention" in json.loads(merged.read_text())["runs"][0]


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--settings", "33:4:32"], "even"),
        (["--settings", "32x4"], "seq_len:pairs:d_model"),
        (["--models", "gpt"], "unknown model"),
        (["--max-steps", "0"], "max_steps"),
    ],
)
def test_cli_bad_input_is_one_clear_line(tmp_path, capsys, extra: list[str], message: str) -> None:
    argv = ["mqar", *TINY, "--models", "attention", "--json", str(tmp_path / "x.json"), *extra]
    assert benchmarks_main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def test_report_rejects_a_foreign_file(tmp_path, capsys) -> None:
    bad = tmp_path / "other.json"
    bad.write_text(json.dumps({"format": "something-else"}))
    assert benchmarks_main(["mqar-report", str(bad)]) == 2
    assert "not an MQAR results file" in capsys.readouterr().err
    assert benchmarks_main(["mqar-report", str(tmp_path / "missing.json")]) == 2
