"""Setting labels name the head count a run really had; eps specs build the eps; gradient norms logged."""

from __future__ import annotations

import json
import math

import torch

from benchmarks.__main__ import main as benchmarks_main
from benchmarks.mqar.data import MQARTask
from benchmarks.mqar.models import MODEL_SPECS, ModelShape, build_model, heads_of
from benchmarks.mqar.report import annotate, merge
from benchmarks.mqar.sweep import Setting, setting_label
from benchmarks.mqar.train import TrainConfig

TASK = MQARTask(seq_len=32, num_kv_pairs=4, vocab_size=64)
SHAPE = ModelShape(d_model=16, n_layers=2, n_heads=2, backend="chunked")
MIX = TrainConfig(train_mix="16:2:3,32:4:1")


def test_one_head_specs_are_labelled_h1_and_the_others_keep_their_label() -> None:
    setting = Setting(TASK, SHAPE)
    assert heads_of(MODEL_SPECS["liquid-qkvconv-u-h1"], SHAPE) == 1 and heads_of(MODEL_SPECS["liquid"], SHAPE) == 2
    assert setting_label(setting, MIX, MODEL_SPECS["attention-h1"]) == "T32-kv4-d16-L2-H1-V64-mix[16:2:3,32:4:1]"
    for name in ("attention", "liquid", "liquid-qkvconv-u-eps"):  # unchanged: committed results keep their keys
        assert setting_label(setting, MIX, MODEL_SPECS[name]) == setting.key + "-mix[16:2:3,32:4:1]"
    assert setting.key == "T32-kv4-d16-L2-H2-V64"


def _run(model: str, setting: str, steps_to_90: int | None, options: dict | None = None) -> dict:
    return {
        "setting": setting, "model": model, "mixer": "attention" if model.startswith("attention") else "liquid",
        "options": options or {}, "train": {"seed": 0, "data_seed": None, "lr": 3e-3, "batch_size": 32},
        "steps_to": {"0.90": steps_to_90}, "steps_run": 2000, "best_accuracy": 0.95 if steps_to_90 else 0.5,
    }  # fmt: skip


def test_attention_of_any_head_count_is_the_baseline(tmp_path) -> None:
    h2 = "T256-kv16-d128-L2-H2-V1024-mix[64:4:5]"
    one_head = _run("liquid-qkvconv-u-h1", h2.replace("-H2-", "-H1-"), 1400, {"n_heads": 1})
    path = tmp_path / "runs.json"
    path.write_text(json.dumps({"format": "liquid-memory-mqar/1", "runs": [_run("attention", h2, 1000), one_head]}))
    doc = annotate(merge([path]))
    settings = {r["model"]: r["setting"] for r in doc["runs"]}
    assert settings == {"attention": h2, "liquid-qkvconv-u-h1": h2.replace("-H2-", "-H1-")}
    (verdict,) = doc["target"]["verdicts"]
    assert verdict["steps_ratio_vs_attention"] == 1.4 and verdict["target_met"]  # H1 run vs the H2 attention
    other = annotate({"runs": [_run("attention", h2.replace("mix[64:4:5]", "mix[64:4:2]"), 1000), one_head]})
    assert other["target"]["verdicts"][0]["steps_ratio_vs_attention"] is None  # another mixture: no baseline


def test_eps_specs_build_the_read_out_eps_and_nothing_else_changes() -> None:
    pairs = [("liquid-eps", "liquid"), ("liquid-qkvconv-u-eps", "liquid-qkvconv-u")]
    pairs += [
        ("liquid-qkvconv-u-slow-eps", "liquid-qkvconv-u-slow"),
        ("liquid-qkvconv-u-eps-h1", "liquid-qkvconv-u-h1"),
    ]
    for name, base in pairs:
        model, ref = build_model(MODEL_SPECS[name], SHAPE, TASK, 0), build_model(MODEL_SPECS[base], SHAPE, TASK, 0)
        assert [b.mixer.memory.out_norm.eps for b in model.blocks] == [1e-2, 1e-2]
        assert [b.mixer.memory.out_norm.eps for b in ref.blocks] == [1e-5, 1e-5]
        for (key, p), (_, q) in zip(model.state_dict().items(), ref.state_dict().items(), strict=True):
            assert torch.equal(p, q), key  # same parameters, same init: only the norm's eps differs


def test_history_records_the_gradient_norm_before_the_clip(tmp_path) -> None:
    out = tmp_path / "g.json"
    argv = ["mqar", "--settings", "32:4:16", "--vocab", "64", "--batch-size", "8", "--eval-examples", "16",
            "--models", "liquid-qkvconv-u-h1", "--max-steps", "4", "--eval-every", "2", "--backend", "chunked",
            "--json", str(out)]  # fmt: skip
    threads = torch.get_num_threads()
    try:
        assert benchmarks_main(argv) == 0
    finally:
        torch.set_num_threads(threads)
    run = json.loads(out.read_text())["runs"][0]
    assert run["setting"] == "T32-kv4-d16-L2-H1-V64"
    for row in run["history"]:
        assert math.isfinite(row["grad_norm_max"]) and row["grad_norm_max"] >= row["grad_norm_mean"] > 0
    assert benchmarks_main(argv) == 0  # re-run: the finished one-head run is recognised by its label and skipped
    assert len(json.loads(out.read_text())["runs"]) == 1
