"""The vector recurrence of the seed's diagonal mixer: ``h_t = exp(log_a_t) ⊙ h_{t-1} + b_t``.

``naive_diag_scan`` is the sequential reference (float64-capable); ``chunked_diag_scan`` is the parallel form
used for training: inside a chunk the weight of input ``s`` at time ``t`` is ``exp(L_t - L_s)`` with ``L`` the
cumulative log-decay, an exponent ≤ 0 for ``s ≤ t`` (never overflows); chunks are chained by their end state.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def naive_diag_scan(log_a: Tensor, b: Tensor, h0: Tensor | None = None) -> tuple[Tensor, Tensor]:
    """``log_a``, ``b``: ``[B, T, C]``; ``h0``: ``[B, C]`` or None → (``h`` ``[B, T, C]``, ``h_T``)."""
    h = torch.zeros_like(b[:, 0]) if h0 is None else h0.to(b.dtype)
    outputs = []
    for t in range(b.shape[1]):
        h = torch.exp(log_a[:, t]).to(b.dtype) * h + b[:, t]
        outputs.append(h)
    return torch.stack(outputs, dim=1), h


def chunked_diag_scan(log_a: Tensor, b: Tensor, h0: Tensor | None = None, chunk: int = 16) -> tuple[Tensor, Tensor]:
    """Same contract as :func:`naive_diag_scan`; computed in fp32 (or float64 for float64 input)."""
    batch, length, channels = b.shape
    out_dtype = b.dtype
    work = torch.float64 if b.dtype == torch.float64 else torch.float32
    log_a, b = log_a.to(work), b.to(work)
    pad = -length % chunk
    if pad:  # padded steps: no decay, no input (they come after every real step, so they change nothing)
        log_a, b = F.pad(log_a, (0, 0, 0, pad)), F.pad(b, (0, 0, 0, pad))
    n = (length + pad) // chunk
    cum = log_a.view(batch, n, chunk, channels).cumsum(dim=2)  # L_t inside each chunk
    diff = cum.unsqueeze(3) - cum.unsqueeze(2)  # [B, n, t, s, C] = L_t - L_s
    causal = torch.ones(chunk, chunk, dtype=torch.bool, device=b.device).tril()
    weights = diff.masked_fill(~causal[:, :, None], float("-inf")).exp()
    local = torch.einsum("bntsc,bnsc->bntc", weights, b.view(batch, n, chunk, channels))
    carry_decay = cum.exp()  # weight of the chunk's entry state at each t
    h = b.new_zeros(batch, channels) if h0 is None else h0.to(work)
    chunks = []
    for i in range(n):
        out = local[:, i] + carry_decay[:, i] * h[:, None]
        h = out[:, -1]
        chunks.append(out)
    hs = torch.cat(chunks, dim=1)[:, :length]
    return hs.to(out_dtype), hs[:, -1].to(out_dtype) if length else h.to(out_dtype)
