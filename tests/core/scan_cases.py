"""Shared by the core tests: fixed-seed random ``liquid_scan`` inputs (``rel_err`` lives in ``tests.numerics``).

Every randomized kernel test draws from a generator seeded by ``case_seed`` (a stable hash of the case's
parameters) unless it passes its own seed: a failure reproduces on the next run and on CI.
"""

from __future__ import annotations

import zlib

import torch


def case_seed(*params) -> int:
    """A fixed seed for one test case, stable across runs, processes and machines (not Python's ``hash``)."""
    return zlib.crc32(repr(params).encode()) % 2**31


def scan_inputs(batch, heads, length, dim, *, dtype=torch.float32, decay="mixed", seed=None, requires_grad=False):
    """q, k, v in ``dtype``; log_a fp32 (float64 for float64 runs) with weak, strong or mixed decays."""
    if seed is None:
        seed = case_seed(batch, heads, length, dim, str(dtype), decay)
    gen = torch.Generator().manual_seed(seed)
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
