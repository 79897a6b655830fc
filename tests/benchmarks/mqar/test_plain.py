"""The plain MQAR stack (the mixer alone, learned positions) against a float64 recomputation; its specs, state sizes,
setting labels and baseline."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from benchmarks.mqar.data import IGNORE, MQARTask, make_split
from benchmarks.mqar.models import MODEL_SPECS, ModelShape, answer_logits, build_model, state_size
from benchmarks.mqar.plain import PlainStack
from benchmarks.mqar.report import annotate
from benchmarks.mqar.sweep import Setting, setting_label
from benchmarks.mqar.train import TrainConfig
from liquid_memory.nn import LiquidMemory
from tests.core.layer_reference import reference_layer
from tests.numerics import rel_err

TASK = MQARTask(seq_len=24, num_kv_pairs=4, vocab_size=64)
SHAPE = ModelShape(d_model=16, n_layers=2, n_heads=2, backend="chunked")
PLAIN = ["plain-attention", "plain-liquid", "plain-liquid-sc4", "plain-liquid-sc4-linear", "plain-liquid-rec-sc4"]


def _layer_norm(x: torch.Tensor, norm: nn.LayerNorm) -> torch.Tensor:
    mean = x.mean(-1, keepdim=True)
    var = (x - mean).pow(2).mean(-1, keepdim=True)
    return (x - mean) / torch.sqrt(var + norm.eps) * norm.weight.double() + norm.bias.double()


def _softmax_attention(h: torch.Tensor, mha: nn.MultiheadAttention) -> torch.Tensor:
    """Causal multi-head softmax attention written out per query token (MHA's parameters, no RoPE)."""
    batch, length, width = h.shape
    heads, d = mha.num_heads, width // mha.num_heads
    qkv = h @ mha.in_proj_weight.double().T + mha.in_proj_bias.double()
    q, k, v = (t.view(batch, length, heads, d) for t in qkv.chunk(3, -1))
    out = torch.zeros(batch, length, heads, d, dtype=torch.float64)
    for t in range(length):
        scores = torch.einsum("bhd,bshd->bhs", q[:, t], k[:, : t + 1]) / math.sqrt(d)
        out[:, t] = torch.einsum("bhs,bshd->bhd", torch.softmax(scores, -1), v[:, : t + 1])
    return out.reshape(batch, length, width) @ mha.out_proj.weight.double().T + mha.out_proj.bias.double()


def reference_logits(model: PlainStack, ids: torch.Tensor) -> torch.Tensor:
    x = model.embed.weight.double()[ids] + model.position.weight.double()[: ids.shape[1]]
    for block in model.blocks:
        h = _layer_norm(x, block.norm)
        if isinstance(block.mixer, LiquidMemory):
            x = x + reference_layer(block.mixer, h, h, h, "causal")[0]
        else:
            x = x + _softmax_attention(h, block.mixer)
    return _layer_norm(x, model.final_norm) @ model.embed.weight.double().T


@pytest.mark.parametrize("name", PLAIN)
def test_plain_stack_matches_float64_recomputation_and_answer_logits(name: str) -> None:
    model = build_model(MODEL_SPECS[name], SHAPE, TASK, seed=0).eval()
    with torch.no_grad():  # norms away from the identity, so a wrong norm placement shows
        for module in model.modules():
            if isinstance(module, nn.LayerNorm):
                module.weight.uniform_(0.5, 1.5)
                module.bias.normal_(0, 0.1)
    inputs, labels = make_split(TASK, 3, seed=0)
    mask = labels != IGNORE
    with torch.no_grad():
        full = model(inputs)
        ours = answer_logits(model, inputs, mask)
    assert rel_err(full, reference_logits(model, inputs)) < 1e-5
    assert rel_err(ours, full[mask]) < 1e-6


def test_plain_specs_build_the_module_with_its_options_and_own_init() -> None:
    model = build_model(MODEL_SPECS["plain-liquid-rec-sc4"], SHAPE, TASK, seed=0)
    memory = model.blocks[0].mixer
    assert isinstance(memory, LiquidMemory) and memory.short_conv == 4 and memory.qk_norm
    assert memory.gate_proj is not None and memory.out_norm.eps == 1e-2
    assert not build_model(MODEL_SPECS["plain-liquid"], SHAPE, TASK, 0).blocks[0].mixer.short_conv
    assert (
        build_model(MODEL_SPECS["plain-liquid-sc4-linear"], SHAPE, TASK, 0).blocks[0].mixer.qkv_conv.activation is None
    )
    assert isinstance(
        build_model(MODEL_SPECS["plain-attention"], SHAPE, TASK, 0).blocks[0].mixer, nn.MultiheadAttention
    )
    torch.manual_seed(0)  # the mixers keep their own (MHA-style xavier) init: nothing re-initialises them
    fresh = LiquidMemory(16, 2, batch_first=True, backend="chunked")
    built = build_model(MODEL_SPECS["plain-liquid"], SHAPE, TASK, seed=0).blocks[0].mixer
    assert float(built.in_proj_weight.std()) == pytest.approx(float(fresh.in_proj_weight.std()), rel=0.2)
    assert not built.out_proj.weight.eq(0).all()  # not LiquidLM's zero-init output projection
    with pytest.raises(ValueError, match="learned positions cover"):
        build_model(MODEL_SPECS["plain-liquid"], SHAPE, TASK, 0)(torch.zeros(1, TASK.seq_len + 1, dtype=torch.long))


def test_plain_state_sizes_are_measured() -> None:
    e, layers, heads, t = SHAPE.d_model, SHAPE.n_layers, SHAPE.n_heads, TASK.seq_len
    assert state_size(build_model(MODEL_SPECS["plain-attention"], SHAPE, TASK, 0), t) == layers * 2 * e * t
    assert state_size(build_model(MODEL_SPECS["plain-liquid"], SHAPE, TASK, 0), t) == layers * e * e // heads
    conv = state_size(build_model(MODEL_SPECS["plain-liquid-sc4"], SHAPE, TASK, 0), t)
    assert conv == layers * (e * e // heads + 3 * 3 * e)  # the window: 3 past projected q/k/v rows


def test_plain_runs_have_their_own_label_and_baseline() -> None:
    setting = Setting(TASK, SHAPE)
    cfg = TrainConfig()
    plain = setting_label(setting, cfg, MODEL_SPECS["plain-liquid-sc4"])
    assert plain == setting.key + "-plain" and setting_label(setting, cfg, MODEL_SPECS["liquid"]) == setting.key

    def run(model: str, label: str, steps: int) -> dict:
        mixer = "attention" if "attention" in model else "liquid"
        train = {"seed": 0, "data_seed": None, "lr": 3e-3, "batch_size": 32}
        return {"setting": label, "model": model, "mixer": mixer, "train": train,
                "steps_to": {"0.90": steps}, "steps_run": steps, "best_accuracy": 0.9}  # fmt: skip

    runs = [
        run("attention", setting.key, 500),
        run("plain-attention", plain, 1000),
        run("plain-liquid-sc4", plain, 1200),
    ]
    annotated = {r["model"]: r for r in annotate({"runs": runs})["runs"]}
    assert annotated["plain-liquid-sc4"]["steps_ratio_vs_attention"] == 1.2  # against plain attention, not 2.4


def test_seed_panels_for_another_setting(tmp_path) -> None:
    from PIL import Image

    from benchmarks.mqar.report import _target_seeds, plot

    label = "T128-kv8-d64-L2-H2-V1024-plain"

    def run(model: str, seed: int) -> dict:
        return {"setting": label, "model": model, "mixer": "attention" if "attention" in model else "liquid",
                "train": {"seed": seed, "data_seed": None, "lr": 3e-3, "batch_size": 32},
                "steps_to": {"0.90": 400}, "steps_run": 400, "best_accuracy": 0.9, "state_size": 1,
                "history": [{"step": 50 * i, "accuracy": 0.1 * i} for i in range(1, 10)]}  # fmt: skip

    runs = [run(m, seed) for seed in (0, 1, 2) for m in ("plain-attention", "plain-liquid-sc4")]
    assert _target_seeds(runs) == (None, [])  # not the target setting: no seed row by default
    assert _target_seeds(runs, "T128-kv8-d64-L2") == (label.replace("-H2", "-H*"), [0, 1, 2])
    plot({"runs": runs}, tmp_path / "default.png")
    plot({"runs": runs}, tmp_path / "panels.png", "T128-kv8-d64-L2")
    assert Image.open(tmp_path / "panels.png").size[1] > 1.8 * Image.open(tmp_path / "default.png").size[1]
