"""The attention matrix a LiquidMemory layer implicitly applies (for ``need_weights=True``).

``o_t = Σ_s A[t, s] v_s`` before the output norm, with (q already scaled by 1/sqrt(d)):

* causal:        ``A[t, s] = q_t · (exp(G_t - G_s) ⊙ k_s)`` for s ≤ t, else 0
* bidirectional: as causal for s ≤ t, and ``q_t · (exp(G_{s-1} - G_t) ⊙ k_s)`` for s > t
* cross:         ``A[i, s] = q_i · (exp(G_S - G_s) ⊙ k_s)``

where ``G`` is the cumulative sum of ``log_a`` over the key sequence. Computed in float64 in row
blocks so memory stays bounded; only used up to ``MAX_WEIGHT_ELEMENTS`` = L·S.
"""

from __future__ import annotations

import torch
from torch import Tensor

MAX_WEIGHT_ELEMENTS = 2**24
_BLOCK_ELEMENTS = 2**22


def implicit_attention(q: Tensor, k: Tensor, log_a: Tensor, mode: str) -> Tensor:
    """``q`` ``[B, H, L, d]``, ``k``/``log_a`` ``[B, H, S, d]`` → ``A`` ``[B, H, L, S]`` (float32)."""
    batch, heads, length, dim = q.shape
    source = k.shape[2]
    q64, k64 = q.double(), k.double()
    g = log_a.double().cumsum(dim=2)
    rows = max(1, _BLOCK_ELEMENTS // max(1, batch * heads * source * dim))
    s_idx = torch.arange(source, device=q.device)
    blocks = []
    for start in range(0, length, rows):
        stop = min(length, start + rows)
        if mode == "cross":
            exponent = (g[:, :, -1:, :] - g).unsqueeze(2).expand(-1, -1, stop - start, -1, -1)
        else:
            t_idx = torch.arange(start, stop, device=q.device)
            g_t = g[:, :, start:stop, None, :]
            backward = _backward_exponent(g, t_idx, s_idx) if mode == "bidirectional" else None
            exponent = g_t - g[:, :, None, :, :]  # s ≤ t: decay from s+1 .. t
            past = (s_idx[None, :] <= t_idx[:, None])[None, None, :, :, None]
            future = backward if backward is not None else torch.full_like(exponent, float("-inf"))
            exponent = torch.where(past, exponent.clamp(max=0), future)
        weights = torch.einsum("bhld,bhlsd->bhls", q64[:, :, start:stop], exponent.exp() * k64[:, :, None])
        blocks.append(weights)
    return torch.cat(blocks, dim=2).float()


def _backward_exponent(g: Tensor, t_idx: Tensor, s_idx: Tensor) -> Tensor:
    """For s > t: log of Π_{r=t+1}^{s-1} a_r = G_{s-1} - G_t (clamped ≤ 0; -inf where s ≤ t)."""
    g_prev = torch.cat([torch.zeros_like(g[:, :, :1]), g[:, :, :-1]], dim=2)  # G_{s-1}, G_{-1} = 0
    exponent = g_prev[:, :, None, :, :] - g[:, :, t_idx, None, :]
    future = (s_idx[None, :] > t_idx[:, None])[None, None, :, :, None]
    return torch.where(future, exponent.clamp(max=0), torch.full_like(exponent, float("-inf")))
