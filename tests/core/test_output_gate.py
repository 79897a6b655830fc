"""``output_gate=True``: y = out_proj(RMSNorm(o) ⊙ σ(W_g x^q)) — equations, gradients, decode, parameters."""

from __future__ import annotations

import pytest
import torch

from liquid_memory import LiquidMemory
from tests.core.layer_reference import cross_inputs, decode_error, gradient_errors, reference_layer
from tests.numerics import rel_err


def make(backend: str, **kwargs) -> LiquidMemory:
    torch.manual_seed(0)
    module = LiquidMemory(32, 4, batch_first=True, backend=backend, output_gate=True, **kwargs)
    with torch.no_grad():  # a gate the test can see: far from σ(0) = 1/2 everywhere
        module.gate_proj.weight.normal_(0, 0.5)
        module.out_norm.weight.uniform_(0.5, 1.5)
    return module


@pytest.mark.parametrize("mode", ["causal", "bidirectional"])
def test_gated_layer_matches_equations(backend, mode):
    module = make(backend)
    x = torch.randn(2, 29, 32, generator=torch.Generator().manual_seed(1))
    out, _ = module(x, x, x, is_causal=mode == "causal", need_weights=False)
    expected, _ = reference_layer(module, x, x, x, mode)
    assert rel_err(out, expected) < 1e-5
    ungated, _ = reference_layer(LiquidMemory(32, 4, batch_first=True), x, x, x, mode)
    assert rel_err(ungated, expected) > 0.1  # the reference really applies a gate


def test_gate_reads_the_query_stream_in_cross_attention(backend):
    module = make(backend, kdim=16, vdim=24)
    query, key, value = cross_inputs()
    out, _ = module(query, key, value, need_weights=False)
    expected, _ = reference_layer(module, query, key, value, "cross")
    assert rel_err(out, expected) < 1e-5


def test_gated_gradients_match_float64_reference(backend):
    errors = gradient_errors(
        make(backend), ("gate_proj.weight", "in_proj_weight", "decay_proj.weight", "out_norm.weight")
    )
    assert max(errors.values()) < 1e-4, errors


def test_gated_decode_continues_the_prefill(backend):
    assert decode_error(make(backend)) < 1e-5


def test_gate_parameters_and_mha_checkpoint():
    assert "gate_proj.weight" not in LiquidMemory(32, 4).state_dict()  # off by default: MHA-shaped
    module = LiquidMemory(32, 4, output_gate=True)
    assert tuple(module.gate_proj.weight.shape) == (32, 32) and "output_gate=True" in repr(module)
    result = module.load_state_dict(torch.nn.MultiheadAttention(32, 4).state_dict(), strict=False)
    assert not result.unexpected_keys and "gate_proj.weight" in result.missing_keys
