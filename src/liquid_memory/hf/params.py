"""The new parameters linearization adds to each attention layer: feature maps, low-rank decay, mix scale.

Kept apart from the attention math so that ``linearize`` can find exactly what stage 1 trains
(``liquid_parameters``) and ``save`` can store exactly what differs from the base model.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from liquid_memory.nn.decay import DELTA_MIN, MAX_HALF_LIFE, MIN_HALF_LIFE, init_decay_bias, inverse_softplus

DECAY_RANK = 16  # rank of the decay projection, as flash-linear-attention's GLA computes its gate


class FeatureMap(nn.Module):
    """Per-head positive feature map ``φ(x) = [softmax(x W_h), softmax(-x W_h)] ∈ R^{2d}`` (Hedgehog-style).

    Positive features make ``φ(q)·φ(k) > 0``, so the liquid part has a normaliser like softmax's and lives
    in the same value space as the window part. ``W_h`` starts as the identity scaled by ``d^{-1/4}``
    (then ``φ(q)·φ(k)`` grows with ``q·k/√d``, the logit the softmax uses).
    """

    def __init__(self, heads: int, head_dim: int) -> None:
        super().__init__()
        eye = torch.eye(head_dim) * head_dim**-0.25
        self.weight = nn.Parameter(eye.repeat(heads, 1, 1))  # [heads, d, d]

    def forward(self, x: Tensor) -> Tensor:
        """``x``: ``[B, heads, T, d]`` → ``[B, heads, T, 2d]`` (computed in x's dtype, fp32 or float64)."""
        return feature_map(x, self.weight)


def feature_map(x: Tensor, weight: Tensor) -> Tensor:
    """``FeatureMap``'s function of ``x`` ``[B, heads, T, d]`` and ``weight`` ``[heads, d, d]`` (the decode step
    calls it with plain tensors)."""
    z = torch.matmul(x, weight.to(x.dtype))
    return torch.cat([torch.softmax(z, dim=-1), torch.softmax(-z, dim=-1)], dim=-1)


def decay_bias(kv_heads: int, feature_dim: int, max_half_life: float | None) -> Tensor:
    """``nn.decay.init_decay_bias`` (half-lives log-uniform 1…4096 tokens), or 1…``max_half_life`` if given."""
    if max_half_life is None or max_half_life == MAX_HALF_LIFE:
        return init_decay_bias(kv_heads, feature_dim)
    if not max_half_life > MIN_HALF_LIFE:
        raise ValueError(f"max_half_life must be > {MIN_HALF_LIFE}, got {max_half_life}")
    lives = torch.logspace(0.0, math.log10(max_half_life), feature_dim, dtype=torch.float64)
    return inverse_softplus(math.log(2.0) / lives - DELTA_MIN).repeat(kv_heads).float()


class LowRankDecay(nn.Module):
    """``log a_t = -(softplus(W_up W_down x_t + b) + δ_min)`` per KV head and feature channel (docs/architecture.md §2).

    ``b`` comes from ``decay_bias`` (half-lives log-uniform 1…4096 tokens over each head's channels, or up to
    ``max_half_life``); the two factors start N(0, 0.02) so the initial decay is the multi-timescale bias.
    """

    def __init__(
        self, hidden: int, kv_heads: int, feature_dim: int, rank: int = DECAY_RANK, max_half_life: float | None = None
    ) -> None:
        super().__init__()
        self.kv_heads, self.feature_dim = kv_heads, feature_dim
        self.down = nn.Parameter(torch.randn(rank, hidden) * 0.02)
        self.up = nn.Parameter(torch.randn(kv_heads * feature_dim, rank) * 0.02)
        self.bias = nn.Parameter(decay_bias(kv_heads, feature_dim, max_half_life))

    def forward(self, x: Tensor) -> Tensor:
        """``x``: ``[B, T, hidden]`` → ``log_a``: ``[B, kv_heads, T, feature_dim]`` (≤ 0, fp32 or float64)."""
        return low_rank_log_decay(x, self.down, self.up, self.bias, self.kv_heads)


def low_rank_log_decay(x: Tensor, down: Tensor, up: Tensor, bias: Tensor, kv_heads: int) -> Tensor:
    """``LowRankDecay``'s function of ``x`` ``[B, T, hidden]`` and its parameters (plain tensors)."""
    acc = torch.float64 if x.dtype == torch.float64 else torch.float32
    x = x.to(acc)
    pre = torch.addmm(bias.to(acc), x.reshape(-1, x.shape[-1]) @ down.to(acc).T, up.to(acc).T)
    log_a = -(nn.functional.softplus(pre) + DELTA_MIN)
    return log_a.view(*x.shape[:2], kv_heads, -1).transpose(1, 2)


class LiquidParams(nn.Module):
    """Everything one patched layer adds: ``feature_q``, ``feature_k``, ``decay``, ``mix_log_scale`` and, with
    ``per_query_mix``, ``mix_query`` (β of each query: ``β_h + x_t · u_h``, ``u`` starting at zero)."""

    def __init__(
        self, hidden: int, heads: int, kv_heads: int, head_dim: int, rank: int = DECAY_RANK,
        max_half_life: float | None = None, per_query_mix: bool = False,
    ) -> None:  # fmt: skip
        super().__init__()
        self.feature_dim = 2 * head_dim
        self.feature_q = FeatureMap(heads, head_dim)
        self.feature_k = FeatureMap(kv_heads, head_dim)
        self.decay = LowRankDecay(hidden, kv_heads, self.feature_dim, rank, max_half_life)
        # β_h: log of the weight the liquid (older-than-window) mass gets next to the softmax window mass
        self.mix_log_scale = nn.Parameter(torch.zeros(heads))
        # a query that looks for one old key needs less of the liquid (averaged) mass than a query that reads
        # broadly: u_h lets each query set its own β from the layer input (zero = the per-head β)
        self.mix_query = nn.Parameter(torch.zeros(heads, hidden)) if per_query_mix else None

    def mix_scale(self, hidden: Tensor) -> Tensor:
        """β: ``[H]`` per head, or ``[B, H, T]`` per query when ``per_query_mix`` (``hidden``: ``[B, T, hidden]``)."""
        if self.mix_query is None:
            return self.mix_log_scale
        x = hidden.to(self.mix_query.dtype)
        return self.mix_log_scale[None, :, None] + torch.einsum("bti,hi->bht", x, self.mix_query)

    def extra_repr(self) -> str:
        return f"feature_dim={self.feature_dim}, decay_rank={self.decay.down.shape[0]}"
