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

    def decode_step(self, x_t: Tensor, cache_k: Tensor, cache_v: Tensor) -> Tensor:
        """One new token ``[B, 1, E]`` attending a KV cache ``[B, H, T, d]`` (the cache is not grown)."""
        q, k, v = (self._heads(t) for t in self.in_proj(x_t).chunk(3, dim=-1))
        o = F.scaled_dot_product_attention(q, torch.cat([cache_k, k], 2), torch.cat([cache_v, v], 2))
        return self.out_proj(o.transpose(1, 2).reshape(x_t.shape))


def causal_mha_call(mha: nn.MultiheadAttention, x: Tensor) -> Tensor:
    """``nn.MultiheadAttention`` as a drop-in user calls it for causal self-attention (need_weights=False)."""
    length = x.shape[1]
    mask = torch.ones(length, length, dtype=torch.bool, device=x.device).triu(1)
    return mha(x, x, x, attn_mask=mask, is_causal=True, need_weights=False)[0]


def mha_peak_estimate_bytes(batch: int, heads: int, length: int, dtype: torch.dtype) -> int:
    """MHA on CPU materialises the [B·H, T, T] scores (twice: scores and softmax) plus a bool mask."""
    element = torch.empty((), dtype=dtype).element_size()
    return 2 * batch * heads * length * length * element + length * length
