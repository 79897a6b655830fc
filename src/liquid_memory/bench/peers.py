"""The layers LiquidMemory is measured against, built with the same shapes and projections."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn


class SDPAAttention(nn.Module):
    """MHA's projections around ``F.scaled_dot_product_attention``: the strongest softmax peer on CPU."""

    def __init__(self, embed_dim: int, num_heads: int, device=None, dtype=None) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.in_proj = nn.Linear(embed_dim, 3 * embed_dim, device=device, dtype=dtype)
        self.out_proj = nn.Linear(embed_dim, embed_dim, device=device, dtype=dtype)

    def _heads(self, x: Tensor) -> Tensor:
        batch, length, _ = x.shape
        return x.view(batch, length, self.num_heads, -1).transpose(1, 2)

    def forward(self, x: Tensor) -> Tensor:
        """Causal self-attention over ``x`` ``[B, T, E]``."""
        q, k, v = (self._heads(t) for t in self.in_proj(x).chunk(3, dim=-1))
        o = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        return self.out_proj(o.transpose(1, 2).reshape(x.shape))

    def decode_step(self, x_t: Tensor, cache_k: Tensor, cache_v: Tensor, length: int) -> Tensor:
        """One new token ``[B, 1, E]`` at position ``length`` of a preallocated KV cache ``[B, H, capacity, d]``:
        its k/v are written in place (no copy of the cache, as a serving engine does) and the query attends
        positions ``[0, length]``."""
        q, k, v = (self._heads(t) for t in self.in_proj(x_t).chunk(3, dim=-1))
        cache_k[:, :, length : length + 1].copy_(k)
        cache_v[:, :, length : length + 1].copy_(v)
        o = F.scaled_dot_product_attention(q, cache_k[:, :, : length + 1], cache_v[:, :, : length + 1])
        return self.out_proj(o.transpose(1, 2).reshape(x_t.shape))


class ProjectionFloor:
    """The GEMMs a ``LiquidMemory`` layer runs in its forward, and nothing else: the floor its forward cannot
    beat. Same weights, same shapes, same packing (one q/k/v GEMM for self-attention; the decay GEMM(s) in
    fp32, full or rank r; ``out_proj``). The layer's overhead is ``layer / floor - 1``."""

    def __init__(self, layer) -> None:
        self.layer = layer

    def __call__(self, x: Tensor) -> Tensor:
        layer = self.layer
        qkv = F.linear(x, layer.in_proj_weight, layer.in_proj_bias)
        z = layer._decay_logits(x.float())
        out = layer.out_proj(x)  # a contiguous [B, T, E] input, as the layer's merged heads are
        if torch.is_grad_enabled() and x.requires_grad:  # one scalar, so backward runs every GEMM's backward
            return qkv.float().sum() + z.sum() + out.float().sum()
        return out


def mha_weights_peak_estimate_bytes(batch: int, heads: int, length: int, dtype: torch.dtype) -> int:
    """``need_weights=True`` (MHA's default) takes the unfused path: per-head [B·H, T, T] scores and softmax,
    plus the averaged [B, T, T] weights it returns."""
    element = torch.empty((), dtype=dtype).element_size()
    return (2 * batch * heads + batch) * length * length * element


def mha_with_weights_call(mha: nn.MultiheadAttention, x: Tensor) -> Tensor:
    """``nn.MultiheadAttention`` with its default ``need_weights=True`` and a causal bool mask."""
    length = x.shape[1]
    mask = torch.ones(length, length, dtype=torch.bool, device=x.device).triu(1)
    return mha(x, x, x, attn_mask=mask, need_weights=True)


def causal_mha_call(mha: nn.MultiheadAttention, x: Tensor) -> Tensor:
    """``nn.MultiheadAttention`` as a drop-in user calls it for causal self-attention (need_weights=False).

    On torch 2.13 a causal bool mask with ``need_weights=False`` takes the fused SDPA path, so this column
    is ≈ SDPA; its memory with the default ``need_weights=True`` is measured separately."""
    length = x.shape[1]
    mask = torch.ones(length, length, dtype=torch.bool, device=x.device).triu(1)
    return mha(x, x, x, attn_mask=mask, is_causal=True, need_weights=False)[0]


def mha_peak_estimate_bytes(batch: int, heads: int, length: int, dtype: torch.dtype) -> int:
    """MHA on CPU materialises the [B·H, T, T] scores (twice: scores and softmax) plus a bool mask."""
    element = torch.empty((), dtype=dtype).element_size()
    return 2 * batch * heads * length * length * element + length * length
