"""``decay_rank``: W_δ = U·V of rank r — parameter names, MHA checkpoints, init, bad ranks (its equations,
gradients and decode are rows of the option matrix, test_layer_options.py)."""

from __future__ import annotations

import math

import pytest
import torch

from liquid_memory import LiquidMemory
from liquid_memory.nn.decay import init_decay_bias

RANK_KEYS = {"decay_proj.down.weight", "decay_proj.up.weight", "decay_proj.up.bias"}


def test_parameter_names_and_shapes():
    module = LiquidMemory(64, 4, decay_rank=16)
    shapes = {name: tuple(p.shape) for name, p in module.named_parameters() if name.startswith("decay_proj")}
    assert shapes == {"decay_proj.down.weight": (16, 64), "decay_proj.up.weight": (64, 16), "decay_proj.up.bias": (64,)}
    full = LiquidMemory(64, 4)
    assert {n for n, _ in full.named_parameters() if n.startswith("decay_proj")} == {
        "decay_proj.weight",
        "decay_proj.bias",
    }
    assert "decay_rank=16" in repr(module)
    assert sum(p.numel() for p in module.decay_proj.parameters()) == 16 * 64 * 2 + 64


@pytest.mark.parametrize("kdim", [None, 16])
def test_mha_checkpoint_loads_with_only_liquid_parameters_missing(kdim):
    mha = torch.nn.MultiheadAttention(32, 4, kdim=kdim, vdim=kdim, batch_first=True)
    module = LiquidMemory(32, 4, kdim=kdim, vdim=kdim, batch_first=True, decay_rank=4)
    result = module.load_state_dict(mha.state_dict(), strict=False)
    assert result.unexpected_keys == []
    assert set(result.missing_keys) == RANK_KEYS | {"out_norm.weight", "qkv_conv.weight"}
    converted = LiquidMemory.from_mha(mha, decay_rank=4)
    assert converted.decay_rank == 4
    assert torch.equal(converted.out_proj.weight, mha.out_proj.weight)


def test_low_rank_state_dict_round_trips():
    a, b = LiquidMemory(32, 4, decay_rank=4), LiquidMemory(32, 4, decay_rank=4)
    torch.manual_seed(9)
    b.load_state_dict(a.state_dict())
    assert torch.equal(a.decay_proj.weight, b.decay_proj.weight)
    with pytest.raises(RuntimeError, match="size mismatch"):
        LiquidMemory(32, 4, decay_rank=8).load_state_dict(a.state_dict())


def test_initialisation_matches_the_full_projection():
    torch.manual_seed(0)
    module = LiquidMemory(256, 4, decay_rank=16)
    assert torch.equal(module.decay_proj.bias, init_decay_bias(4, 64))  # multi-timescale half-lives unchanged
    std = module.decay_proj.weight.std().item()  # U·V entries on the full projection's N(0, 0.02) scale
    assert abs(std - 0.02) < 0.002, std


@pytest.mark.parametrize("rank", [0, -3, 2.5, True, "16"])
def test_bad_rank_raises(rank):
    with pytest.raises(ValueError, match="decay_rank must be a positive int or None"):
        LiquidMemory(32, 4, decay_rank=rank)


def test_rank_reduces_decay_work():
    full, low = LiquidMemory(1024, 16), LiquidMemory(1024, 16, decay_rank=16)
    ratio = sum(p.numel() for p in full.decay_proj.parameters()) / sum(p.numel() for p in low.decay_proj.parameters())
    assert ratio > 30 and math.isclose(low.decay_proj.weight.shape[0], 1024)
