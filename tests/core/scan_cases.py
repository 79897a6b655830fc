"""Fresh random liquid_scan inputs shared by the backend tests."""

from __future__ import annotations

import torch


def rel_err(actual: torch.Tensor, expected: torch.Tensor) -> float:
    """‖a − b‖ / ‖b‖ in float64; fails loudly on NaN/Inf."""
    assert torch.isfinite(actual).all(), "NaN/Inf in result"
    actual, expected = actual.detach().double(), expected.detach().double()
    return ((actual - expected).norm() / expected.norm().clamp_min(1e-300)).item()


def scan_inputs(batch, heads, length, dim, *, dtype=torch.float32, decay="mixed", seed=None, requires_grad=False):
    """q, k, v in ``dtype``; log_a fp32 (float64 for float64 runs) with weak, strong or mixed decays."""
    gen = torch.Generator().manual_seed(seed if seed is not None else torch.seed() % 2**31)
    shape = (batch, heads, length, dim)
    q, k, v = (torch.randn(shape, generator=gen, dtype=torch.float64) for _ in range(3))
    rates = {
        "weak": torch.rand(shape, generator=gen, dtype=torch.float64) * 1e-3,
        "strong": 1 + torch.rand(shape, generator=gen, dtype=torch.float64) * 19,  # down to -20 per step
        "mixed": torch.rand(shape, generator=gen, dtype=torch.float64).pow(4) * 20,
    }[decay]
    log_a = -rates
    log_dtype = torch.float64 if dtype == torch.float64 else torch.float32
    tensors = [q.to(dtype), k.to(dtype), v.to(dtype), log_a.to(log_dtype)]
    for t in tensors:
        t.requires_grad_(requires_grad)
    return tensors
