"""Multi-timescale initialisation of the liquid decay (DESIGN.md §2)."""

from __future__ import annotations

import math

import torch
from torch import Tensor

DELTA_MIN = 1e-6
MIN_HALF_LIFE, MAX_HALF_LIFE = 1.0, 4096.0


def inverse_softplus(y: Tensor) -> Tensor:
    """``softplus⁻¹(y) = log(expm1(y))``, written to stay accurate for tiny ``y``."""
    return y + torch.log(-torch.expm1(-y))


def init_decay_bias(num_heads: int, head_dim: int) -> Tensor:
    """``b_δ`` such that each head's d channels have half-lives log-uniform from 1 to 4096 tokens.

    ``b = softplus⁻¹(ln 2 / τ - δ_min)``, so that with zero input ``δ = softplus(b) + δ_min = ln 2 / τ``
    exactly: retention halves after τ tokens (subtracting δ_min keeps the 4096-token channel exact).
    """
    half_lives = torch.logspace(math.log10(MIN_HALF_LIFE), math.log10(MAX_HALF_LIFE), head_dim, dtype=torch.float64)
    bias = inverse_softplus(math.log(2.0) / half_lives - DELTA_MIN)
    return bias.repeat(num_heads).float()
