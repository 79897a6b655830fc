"""The liquid decay projection ``W_δ`` (full or rank ``r``) and its multi-timescale init (docs/architecture.md §2)."""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

DELTA_MIN = 1e-6
MIN_HALF_LIFE, MAX_HALF_LIFE = 1.0, 4096.0


def inverse_softplus(y: Tensor) -> Tensor:
    """``softplus⁻¹(y) = log(expm1(y))``, written to stay accurate for tiny ``y``."""
    return y + torch.log(-torch.expm1(-y))


def init_decay_bias(
    num_heads: int, head_dim: int, min_half_life: float = MIN_HALF_LIFE, max_half_life: float = MAX_HALF_LIFE
) -> Tensor:
    """``b_δ`` such that each head's d channels have half-lives log-uniform from 1 to 4096 tokens (by default).

    ``b = softplus⁻¹(ln 2 / τ - δ_min)``, so that with zero input ``δ = softplus(b) + δ_min = ln 2 / τ``
    exactly: retention halves after τ tokens (subtracting δ_min keeps the 4096-token channel exact).
    """
    if not 0 < min_half_life <= max_half_life:
        raise ValueError(f"need 0 < min_half_life <= max_half_life, got {min_half_life} and {max_half_life}")
    half_lives = torch.logspace(math.log10(min_half_life), math.log10(max_half_life), head_dim, dtype=torch.float64)
    bias = inverse_softplus(math.log(2.0) / half_lives - DELTA_MIN)
    return bias.repeat(num_heads).float()


class LowRankDecayProjection(nn.Module):
    """``W_δ = U·V`` of rank ``r`` (``kdim → r → embed_dim``): the decay costs ``r·(kdim + E)`` multiply-adds per
    token instead of ``kdim·E`` (flash-linear-attention's GLA computes its gate through rank 16 the same way).

    Parameters (state_dict keys under the module's name, e.g. ``decay_proj.``): ``down.weight`` ``[r, kdim]``
    (V, no bias), ``up.weight`` ``[E, r]`` (U) and ``up.bias`` ``[E]`` (b_δ, the multi-timescale bias).
    ``weight`` and ``bias`` expose the effective ``[E, kdim]`` matrix and ``b_δ`` as the full ``nn.Linear`` does,
    so code that reads ``decay_proj.weight`` / ``.bias`` works with either form.
    """

    def __init__(self, in_features: int, out_features: int, rank: int, device=None, dtype=None) -> None:
        super().__init__()
        if not isinstance(rank, int) or isinstance(rank, bool) or rank <= 0:
            raise ValueError(f"decay_rank must be a positive int or None, got {rank!r}")
        self.in_features, self.out_features, self.rank = in_features, out_features, rank
        self.down = nn.Linear(in_features, rank, bias=False, device=device, dtype=dtype)
        self.up = nn.Linear(rank, out_features, bias=True, device=device, dtype=dtype)

    @property
    def weight(self) -> Tensor:
        """The effective ``W_δ = U·V`` ``[E, kdim]`` (a product, not a parameter: assign to ``up``/``down``)."""
        return self.up.weight @ self.down.weight

    @property
    def bias(self) -> Tensor:
        return self.up.bias

    def reset_parameters(self, std: float) -> None:
        """Entries of ``U·V`` get standard deviation ``std``, as the full projection's ``N(0, std)`` weights do:
        ``V ~ N(0, 1/sqrt(kdim))`` keeps ``V x`` at the input's scale, ``U ~ N(0, std·sqrt(kdim / r))``."""
        nn.init.normal_(self.down.weight, std=self.in_features**-0.5)
        nn.init.normal_(self.up.weight, std=std * (self.in_features / self.rank) ** 0.5)

    def forward(self, x: Tensor) -> Tensor:
        return self.up(self.down(x))

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, rank={self.rank}, out_features={self.out_features}"


def make_decay_projection(in_features: int, out_features: int, rank: int | None, device=None, dtype=None) -> nn.Module:
    """``decay_proj``: the full ``nn.Linear`` (``rank=None``; keys ``weight``, ``bias``) or the rank-``r`` product."""
    if rank is None:
        return nn.Linear(in_features, out_features, device=device, dtype=dtype)
    return LowRankDecayProjection(in_features, out_features, rank, device=device, dtype=dtype)


def reset_decay_projection(proj: nn.Module, num_heads: int, head_dim: int, std: float = 0.02) -> None:
    """Weights ``N(0, std)`` (for the low-rank form: the product's entries), bias = the multi-timescale init."""
    if isinstance(proj, LowRankDecayProjection):
        proj.reset_parameters(std)
    else:
        nn.init.normal_(proj.weight, std=std)
    with torch.no_grad():
        proj.bias.copy_(init_decay_bias(num_heads, head_dim))
