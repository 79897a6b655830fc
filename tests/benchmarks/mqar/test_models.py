"""The MQAR adapter around LiquidLM: answer-position logits equal the model's own, state sizes are measured."""

from __future__ import annotations

import pytest
import torch

from benchmarks.mqar.data import IGNORE, MQARTask, make_split
from benchmarks.mqar.models import (
    MODEL_SPECS,
    ModelShape,
    answer_logits,
    build_model,
    parse_models,
    state_size,
)
from tests.numerics import rel_err

TASK = MQARTask(seq_len=32, num_kv_pairs=4, vocab_size=64)
SHAPE = ModelShape(d_model=16, n_layers=2, n_heads=2, backend="chunked")


@pytest.mark.parametrize(
    "name",
    ["attention", "liquid", "liquid-conv", "liquid-coupled", "liquid-no-norm", "liquidnet", "liquid-qkvconv"],
)
def test_answer_logits_equal_full_forward(name: str) -> None:
    model = build_model(MODEL_SPECS[name], SHAPE, TASK, seed=0)
    # LiquidLM zero-inits output projections, so perturb every weight: the check must see the blocks work.
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.05 * torch.randn(p.shape, generator=torch.Generator().manual_seed(p.numel())))
    model.train(False)
    inputs, labels = make_split(TASK, 3, seed=0)
    mask = labels != IGNORE
    with torch.no_grad():
        full, _ = model(inputs, use_cache=False)
        ours = answer_logits(model, inputs, mask)
    assert ours.shape == (int(mask.sum()), TASK.vocab_size)
    assert rel_err(ours, full[mask]) < 1e-6


def test_build_is_seeded() -> None:
    a = build_model(MODEL_SPECS["liquid"], SHAPE, TASK, seed=1)
    b = build_model(MODEL_SPECS["liquid"], SHAPE, TASK, seed=1)
    for (name, pa), (_, pb) in zip(a.named_parameters(), b.named_parameters(), strict=True):
        assert torch.equal(pa, pb), name


def test_state_size_is_measured_per_mixer() -> None:
    e, layers, heads, t = SHAPE.d_model, SHAPE.n_layers, SHAPE.n_heads, TASK.seq_len
    assert state_size(build_model(MODEL_SPECS["attention"], SHAPE, TASK, 0), t) == layers * 2 * e * t
    assert state_size(build_model(MODEL_SPECS["liquid"], SHAPE, TASK, 0), t) == layers * e * e // heads
    conv = state_size(build_model(MODEL_SPECS["liquid-conv"], SHAPE, TASK, 0), t)
    assert conv == layers * (e * e // heads + 3 * e)  # kernel 4 keeps 3 past inputs per channel
    assert state_size(build_model(MODEL_SPECS["liquidnet"], SHAPE, TASK, 0), t) == layers * e
    qkv = state_size(build_model(MODEL_SPECS["liquid-qkvconv"], SHAPE, TASK, 0), t)
    assert qkv == layers * (e * e // heads + 3 * 3 * e)  # three kernel-4 windows per layer
    assert SHAPE.n_heads > 1  # the one-head specs override the shared shape: a bigger H·d² state
    one_head = build_model(MODEL_SPECS["liquid-qkvconv-u-h1"], SHAPE, TASK, 0)
    assert one_head.config.n_heads == 1 and state_size(one_head, t) == layers * (e * e + 3 * 3 * e)
    assert build_model(MODEL_SPECS["attention-h1"], SHAPE, TASK, 0).config.n_heads == 1


def test_static_decay_adapter_freezes_the_input_dependence() -> None:
    model = build_model(MODEL_SPECS["liquid-static"], SHAPE, TASK, seed=0)
    reference = build_model(MODEL_SPECS["liquid"], SHAPE, TASK, seed=0)
    inputs, labels = make_split(TASK, 4, seed=0)
    mask = labels != IGNORE
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    for _ in range(2):
        opt.zero_grad()
        answer_logits(model, inputs, mask).logsumexp(-1).sum().backward()
        opt.step()
    for block, ref in zip(model.blocks, reference.blocks, strict=True):
        proj = block.mixer.memory.decay_proj
        assert not proj.weight.requires_grad and not proj.weight.any()
        assert not torch.equal(proj.bias, ref.mixer.memory.decay_proj.bias)  # the bias still trains
    with pytest.raises(ValueError, match="liquid mixer only"):
        build_model(MODEL_SPECS["liquid-static"].__class__("x", "attention", init="static-decay"), SHAPE, TASK, 0)


def test_parse_models() -> None:
    assert [s.name for s in parse_models("attention, liquid")] == ["attention", "liquid"]
    with pytest.raises(ValueError, match="unknown model 'gpt'"):
        parse_models("attention,gpt")
    with pytest.raises(ValueError, match="no models"):
        parse_models(" , ")


def test_decay_and_conv_adapters() -> None:
    import math

    from liquid_memory.nn.decay import DELTA_MIN

    slow = build_model(MODEL_SPECS["liquid-qkvconv-u-slow"], SHAPE, TASK, seed=0)
    for block in slow.blocks:
        delta = torch.nn.functional.softplus(block.mixer.memory.decay_proj.bias.double()) + DELTA_MIN
        half_lives = math.log(2) / delta
        assert abs(half_lives.min().item() - 32.0) < 1e-2 and abs(half_lives.max().item() - 4096.0) < 1.0
        for conv in block.mixer.convs.values():
            w = conv.weight[:, 0]
            assert w.abs().max() <= 0.5 and w[:, :-1].abs().mean() > 0.1  # uniform ±1/sqrt(4), no identity start
    with pytest.raises(ValueError, match="needs a model with short_conv"):
        build_model(MODEL_SPECS["liquid"].__class__("x", "liquid", init="conv-uniform"), SHAPE, TASK, 0)
    with pytest.raises(ValueError, match="unknown init"):
        build_model(MODEL_SPECS["liquid"].__class__("x", "liquid", init="slow-decay+warm"), SHAPE, TASK, 0)
