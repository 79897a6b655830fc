"""``qk_norm=True``: q_t and k_t divided by their per-head L2 norms — equations, gradients, decode, no parameters."""

from __future__ import annotations

import pytest
import torch

from liquid_memory import LiquidMemory
from tests.core.layer_reference import cross_inputs, decode_error, gradient_errors, reference_layer
from tests.numerics import rel_err


def make(backend: str, **kwargs) -> LiquidMemory:
    torch.manual_seed(0)
    module = LiquidMemory(32, 4, batch_first=True, backend=backend, qk_norm=True, **kwargs)
    with torch.no_grad():  # q/k norms far from 1, so the normalisation changes the output
        for weight in (module.in_proj_weight, module.q_proj_weight, module.k_proj_weight):
            if weight is not None:
                weight.mul_(3.0)
    return module


@pytest.mark.parametrize("mode", ["causal", "bidirectional"])
def test_normalised_layer_matches_equations(backend, mode):
    module = make(backend)
    x = torch.randn(2, 29, 32, generator=torch.Generator().manual_seed(1))
    out, _ = module(x, x, x, is_causal=mode == "causal", need_weights=False)
    expected, o = reference_layer(module, x, x, x, mode)
    assert rel_err(out, expected) < 1e-5
    module.qk_norm = False
    plain, _ = reference_layer(module, x, x, x, mode)
    assert rel_err(plain, expected) > 0.05  # the reference really normalises


def test_qk_norm_with_separate_streams_and_padding(backend):
    module = make(backend, kdim=16, vdim=24)
    query, key, value = cross_inputs()
    out, _ = module(query, key, value, need_weights=False)
    expected, _ = reference_layer(module, query, key, value, "cross")
    assert rel_err(out, expected) < 1e-5
    x = torch.randn(2, 11, 32, generator=torch.Generator().manual_seed(4))
    padded = torch.zeros(2, 11, dtype=torch.bool)
    padded[1, 7:] = True
    square = make(backend)
    out, _ = square(x, x, x, key_padding_mask=padded, is_causal=True, need_weights=False)
    expected, _ = reference_layer(square, x, x, x, "causal", padded)
    assert rel_err(out, expected) < 1e-5


def test_normalised_gradients_match_float64_reference(backend):
    errors = gradient_errors(make(backend), ("in_proj_weight", "decay_proj.weight", "out_norm.weight"))
    assert max(errors.values()) < 1e-4, errors


def test_normalised_decode_continues_the_prefill(backend):
    assert decode_error(make(backend)) < 1e-5


def test_qk_norm_is_off_by_default_and_adds_no_parameters():
    assert not LiquidMemory(32, 4).qk_norm and "qk_norm" not in repr(LiquidMemory(32, 4))
    module = LiquidMemory(32, 4, qk_norm=True)
    assert "qk_norm=True" in repr(module)
    assert module.state_dict().keys() == LiquidMemory(32, 4).state_dict().keys()
