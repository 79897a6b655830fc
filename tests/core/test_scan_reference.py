"""The chunked PyTorch scan against the sequential naive oracle (float64 and float32/bf16)."""

from __future__ import annotations

import pytest
import torch

from liquid_memory.ops.chunked import chunked_liquid_scan
from liquid_memory.ops.naive import naive_liquid_scan
from tests.core.scan_cases import scan_inputs
from tests.numerics import rel_err


@pytest.mark.parametrize("length", [1, 63, 65, 1000])
@pytest.mark.parametrize("decay", ["weak", "strong", "mixed"])
@pytest.mark.parametrize("reverse", [False, True])
def test_chunked_matches_naive_float64(length, decay, reverse):
    q, k, v, log_a = scan_inputs(1, 2, length, 32, dtype=torch.float64, decay=decay)
    state = torch.randn(1, 2, 32, 32, dtype=torch.float64)
    expected, expected_state = naive_liquid_scan(
        q, k, v, log_a, initial_state=state, reverse=reverse, output_final_state=True
    )
    o, final = chunked_liquid_scan(q, k, v, log_a, initial_state=state, reverse=reverse, output_final_state=True)
    assert rel_err(o, expected) < 1e-12 and rel_err(final, expected_state) < 1e-12


@pytest.mark.parametrize("dim", [32, 64, 128])
def test_chunked_float32_against_float64_oracle(dim):
    q, k, v, log_a = scan_inputs(2, 2, 130, dim, decay="mixed")
    expected, expected_state = naive_liquid_scan(
        q.double(), k.double(), v.double(), log_a.double(), output_final_state=True
    )
    o, final = chunked_liquid_scan(q, k, v, log_a, output_final_state=True)
    assert o.dtype == torch.float32 and final.dtype == torch.float32
    assert rel_err(o, expected) < 1e-5 and rel_err(final, expected_state) < 1e-5


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_chunked_half_precision_in_and_out(dtype):
    q, k, v, log_a = scan_inputs(1, 2, 200, 64, dtype=dtype)
    expected, _ = naive_liquid_scan(q.double(), k.double(), v.double(), log_a.double())
    o, final = chunked_liquid_scan(q, k, v, log_a, output_final_state=True)
    assert o.dtype == dtype and final.dtype == torch.float32
    assert rel_err(o, expected) < 1e-2


def test_extreme_decay_never_overflows():
    q, k, v, log_a = scan_inputs(1, 1, 256, 32, decay="strong")
    log_a = log_a * 50  # -1000 per step: exp of any positive cumulative sum would be inf
    o, final = chunked_liquid_scan(q, k, v, log_a, output_final_state=True)
    expected, expected_state = naive_liquid_scan(
        q.double(), k.double(), v.double(), log_a.double(), output_final_state=True
    )
    assert rel_err(o, expected) < 1e-5 and rel_err(final, expected_state) < 1e-5


@pytest.mark.parametrize("reverse", [False, True])
def test_chunked_gradients_match_naive(reverse):
    inputs = scan_inputs(1, 2, 70, 32, dtype=torch.float64, decay="mixed", requires_grad=True)
    state = torch.randn(1, 2, 32, 32, dtype=torch.float64, requires_grad=True)
    weights = torch.randn(1, 2, 70, 32, dtype=torch.float64)
    state_weights = torch.randn(1, 2, 32, 32, dtype=torch.float64)

    def grads(fn):
        o, final = fn(*inputs, initial_state=state, reverse=reverse, output_final_state=True)
        return torch.autograd.grad((o * weights).sum() + (final * state_weights).sum(), [*inputs, state])

    for got, want in zip(grads(chunked_liquid_scan), grads(naive_liquid_scan), strict=True):
        assert rel_err(got, want) < 1e-10


def test_chunked_gradcheck_float64():
    inputs = scan_inputs(1, 1, 19, 4, dtype=torch.float64, decay="mixed", requires_grad=True)
    state = torch.randn(1, 1, 4, 4, dtype=torch.float64, requires_grad=True)

    def fn(q, k, v, log_a, s):
        o, final = chunked_liquid_scan(q, k, v, log_a, initial_state=s, output_final_state=True, chunk_size=16)
        return o, final

    assert torch.autograd.gradcheck(fn, (*inputs, state))


def test_precision_safe_mode_is_automatic_above_64k_and_forcible():
    from liquid_memory.ops.chunked import resolve_precision_safe

    assert not resolve_precision_safe(None, 65536) and resolve_precision_safe(None, 65537)
    assert resolve_precision_safe(True, 10) and not resolve_precision_safe(False, 10**6)
    q, k, v, log_a = scan_inputs(1, 1, 640, 32, decay="weak")
    expected, expected_state = naive_liquid_scan(
        q.double(), k.double(), v.double(), log_a.double(), output_final_state=True
    )
    o, final = chunked_liquid_scan(q, k, v, log_a, output_final_state=True, precision_safe=True)
    assert rel_err(o, expected) < 1e-5 and rel_err(final, expected_state) < 1e-5
