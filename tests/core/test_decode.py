"""prefill / step / state handling: decoding token by token equals the parallel causal forward."""

from __future__ import annotations

import pytest
import torch

from liquid_memory import LiquidMemory
from tests.numerics import rel_err


@pytest.mark.parametrize("batch_first", [True, False])
def test_prefill_then_step_equals_parallel_forward(backend, batch_first):
    torch.manual_seed(0)
    module = LiquidMemory(64, 4, batch_first=batch_first, backend=backend).eval()
    x = torch.randn(2, 70, 64)
    x_in = x if batch_first else x.transpose(0, 1)
    full, _ = module(x_in, x_in, x_in, is_causal=True, need_weights=False)
    full = full if batch_first else full.transpose(0, 1)
    prefix = x_in[:, :50] if batch_first else x_in[:50]
    head = module.prefill(prefix)
    head = head if batch_first else head.transpose(0, 1)
    steps = torch.stack([module.step(x[:, t]) for t in range(50, 70)], dim=1)
    assert rel_err(head, full[:, :50]) < 1e-5
    assert rel_err(steps, full[:, 50:]) < 1e-5


def test_step_from_empty_state_and_unbatched(backend):
    torch.manual_seed(0)
    module = LiquidMemory(32, 2, backend=backend).eval()
    x = torch.randn(9, 32)
    full, _ = module(x, x, x, is_causal=True, need_weights=False)
    module.reset_state()
    outs = torch.stack([module.step(x[t]) for t in range(9)])
    assert outs.shape == (9, 32) and rel_err(outs, full) < 1e-5


@pytest.mark.parametrize("short_conv", [0, 4])
def test_state_get_set_round_trip(backend, short_conv):
    """The state is the ``[N, H, d, d]`` tensor, or with the q/k/v convolution ``{"memory": ..., "conv": ...}``."""
    torch.manual_seed(0)
    module = LiquidMemory(32, 2, batch_first=True, backend=backend, short_conv=short_conv).eval()
    x = torch.randn(1, 30, 32)
    module.prefill(x[:, :20])
    snapshot = module.get_state()
    first = module.step(x[:, 20])
    tensors = lambda state: list(state.values()) if isinstance(state, dict) else [state]  # noqa: E731
    kept = [t.clone() for t in tensors(snapshot)]
    module.set_state(snapshot)
    again = module.step(x[:, 20])
    assert torch.equal(first, again)
    for t, k in zip(tensors(snapshot), kept, strict=True):
        assert torch.equal(t, k), "set_state must not let later steps modify the caller's tensors"
    assert isinstance(snapshot, dict) == bool(short_conv)
    module.reset_state()
    assert module.get_state() is None
    with pytest.raises(ValueError, match="state must have shape" if not short_conv else "state is a dict"):
        module.set_state(torch.zeros(1, 3, 16, 16))
    with pytest.raises(ValueError, match="one token per sequence"):
        module.step(torch.randn(1, 2, 32))


def test_state_batch_mismatch_is_reported(backend):
    module = LiquidMemory(32, 2, batch_first=True, backend=backend)
    module.prefill(torch.randn(2, 5, 32))
    with pytest.raises(ValueError, match="state holds batch 2"):
        module.step(torch.randn(3, 32))


def test_prefill_with_separate_key_and_value_streams_continues_in_pieces(backend):
    """``prefill(x, key=, value=)`` (models.qkv_conv's path): two pieces from the state == one causal call."""
    torch.manual_seed(0)
    module = LiquidMemory(32, 4, kdim=24, vdim=16, batch_first=True, backend=backend).eval()
    gen = torch.Generator().manual_seed(4)
    q, k, v = (torch.randn(2, 41, width, generator=gen) for width in (32, 24, 16))
    full, _ = module(q, k, v, is_causal=True, need_weights=False)
    first = module.prefill(q[:, :30], key=k[:, :30], value=v[:, :30])
    second = module.prefill(q[:, 30:], key=k[:, 30:], value=v[:, 30:])
    assert rel_err(torch.cat([first, second], dim=1), full) < 1e-5
    module.reset_state()
    with pytest.raises(ValueError, match="prefill is causal"):
        module.prefill(q[:, :30], key=k[:, :29], value=v[:, :29])
