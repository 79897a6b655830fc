"""``out_norm_eps``: the read-out norm's eps on the scale of ``o/sqrt(d)`` — equations, fused path, decode."""

from __future__ import annotations

import pytest
import torch

from liquid_memory import LiquidMemory
from tests.core.layer_reference import decode_error, gradient_errors, reference_layer
from tests.numerics import rel_err


def make(backend: str, eps: float) -> LiquidMemory:
    torch.manual_seed(0)
    return LiquidMemory(32, 4, batch_first=True, backend=backend, out_norm_eps=eps)


def small_input() -> torch.Tensor:
    """Read-outs of the same order as ``sqrt(eps)``, so eps visibly changes the output."""
    return 0.05 * torch.randn(2, 29, 32, generator=torch.Generator().manual_seed(1))


@pytest.mark.parametrize("mode", ["causal", "bidirectional"])
def test_eps_matches_equations_with_and_without_autograd(backend, mode):
    module, x = make(backend, 1e-2), small_input()
    expected, _ = reference_layer(module, x, x, x, mode)
    out, _ = module(x, x, x, is_causal=mode == "causal", need_weights=False)
    with torch.no_grad():  # the cpp backend fuses the norm into the scan here (eps passed to the kernel)
        fused, _ = module(x, x, x, is_causal=mode == "causal", need_weights=False)
    assert rel_err(out, expected) < 1e-5 and rel_err(fused, expected) < 1e-5
    default, _ = reference_layer(make(backend, 1e-5), x, x, x, mode)
    assert rel_err(default, expected) > 0.05  # eps really changes the read-out at this scale


def test_eps_gradients_and_decode(backend):
    module = make(backend, 1e-2)
    errors = gradient_errors(module, ("in_proj_weight", "decay_proj.weight", "out_norm.weight"))
    assert max(errors.values()) < 1e-4, errors
    assert decode_error(module) < 1e-5


def test_default_and_invalid_eps():
    module = LiquidMemory(32, 4)
    assert module.out_norm.eps == 1e-5 and "out_norm_eps=1e-05" in repr(module)
    for bad in (0.0, -1e-3, float("nan")):
        with pytest.raises(ValueError, match="out_norm_eps"):
            LiquidMemory(32, 4, out_norm_eps=bad)
