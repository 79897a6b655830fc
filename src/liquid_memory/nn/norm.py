"""Per-head RMSNorm on the mixer output: keeps every head's read-out on one scale (docs/architecture.md §2)."""

from __future__ import annotations

import torch
from torch import Tensor, nn


class HeadRMSNorm(nn.Module):
    """RMSNorm over each head's ``head_dim`` channels with one learnable weight of shape ``[embed_dim]``."""

    def __init__(self, num_heads: int, head_dim: int, eps: float = 1e-5, device=None, dtype=None) -> None:
        super().__init__()
        self.num_heads, self.head_dim, self.eps = num_heads, head_dim, eps
        self.weight = nn.Parameter(torch.ones(num_heads * head_dim, device=device, dtype=dtype))

    def forward(self, o: Tensor, input_scale: float = 1.0) -> Tensor:
        """``o``: ``[B, H, T, d]`` → ``RMSNorm(input_scale · o)``, same shape; statistics in fp32.

        ``RMSNorm(s·o) = o · rsqrt(mean(o²) + eps/s²)``: the scale costs no pass over ``o`` (the layer folds its
        ``1/sqrt(d)`` query scale in here).
        """
        of = o.float()
        normed = of * torch.rsqrt(of.pow(2).mean(-1, keepdim=True) + self.eps / input_scale**2)
        weight = self.weight.float().view(self.num_heads, 1, self.head_dim)
        return (normed * weight).to(o.dtype)
