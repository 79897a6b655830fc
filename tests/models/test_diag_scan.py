"""The seed mixer's chunked vector scan against its sequential float64 reference (values and gradients)."""

from __future__ import annotations

import pytest
import torch

from liquid_memory.models.diag_scan import chunked_diag_scan, naive_diag_scan
from tests.numerics import rel_err


@pytest.mark.parametrize("length", [1, 15, 16, 45])
@pytest.mark.parametrize("strength", [0.01, 1.0, 30.0])
def test_chunked_matches_naive(length, strength):
    gen = torch.Generator().manual_seed(length)
    log_a = -strength * torch.rand(2, length, 5, generator=gen, dtype=torch.float64)
    b = torch.randn(2, length, 5, generator=gen, dtype=torch.float64)
    h0 = torch.randn(2, 5, generator=gen, dtype=torch.float64)
    expected, expected_last = naive_diag_scan(log_a, b, h0)
    for dtype in (torch.float64, torch.float32):
        got, last = chunked_diag_scan(log_a.to(dtype), b.to(dtype), h0.to(dtype))
        tolerance = 1e-12 if dtype == torch.float64 else 1e-5
        assert rel_err(got, expected) < tolerance and rel_err(last, expected_last) < tolerance


def test_gradients_match_naive():
    gen = torch.Generator().manual_seed(0)
    inputs = [
        (-3 * torch.rand(2, 37, 4, generator=gen, dtype=torch.float64)).requires_grad_(),
        torch.randn(2, 37, 4, generator=gen, dtype=torch.float64, requires_grad=True),
        torch.randn(2, 4, generator=gen, dtype=torch.float64, requires_grad=True),
    ]
    weights = torch.randn(2, 37, 4, generator=gen, dtype=torch.float64)
    grads = []
    for scan in (naive_diag_scan, chunked_diag_scan):
        h, last = scan(*inputs)
        grads.append(torch.autograd.grad((h * weights).sum() + last.sum(), inputs))
    for got, expected in zip(grads[1], grads[0], strict=True):
        assert rel_err(got, expected) < 1e-10
