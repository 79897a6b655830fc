"""The attention matrix a LiquidMemory layer implicitly applies (for ``need_weights=True``).

``o_t = Σ_s A[t, s] v_s`` before the output norm, with (q already scaled by 1/sqrt(d)):

* causal:        ``A[t, s] = q_t · (exp(G_t - G_s) ⊙ k_s)`` for s ≤ t, else 0
* bidirectional: as causal for s ≤ t, and ``q_t · (exp(G_{s-1} - G_t) ⊙ k_s)`` for s > t
* cross:         ``A[i, s] = q_i · (exp(G_S - G_s) ⊙ k_s)``

where ``G`` is the cumulative sum of ``log_a`` over the key sequence (kept in float64). Rows are
processed in blocks of ``BLOCK`` queries: columns outside the block factor through the block's
boundary (two exponentials, both ≤ 0, then one matrix product), columns inside it are evaluated
pairwise — the same overflow-free scheme as the chunked scan.
"""

from __future__ import annotations

import warnings

import torch
from torch import Tensor

from liquid_memory.ops.chunked import SUB_CHUNK, intra_chunk_scores

MAX_WEIGHT_ELEMENTS = 2**24
BLOCK = 64
_warned_weights = False  # the too-large warning is given once per process


def implicit_attention(q: Tensor, k: Tensor, log_a: Tensor, mode: str) -> Tensor:
    """``q`` ``[B, H, L, d]``, ``k``/``log_a`` ``[B, H, S, d]`` → ``A`` ``[B, H, L, S]`` (float32)."""
    qf, kf = q.float(), k.float()
    g = log_a.double().cumsum(dim=2)
    if mode == "cross":
        return qf @ (kf * (g[:, :, -1:] - g).exp().float()).transpose(-1, -2)
    length, source = q.shape[2], k.shape[2]
    g_prev = torch.cat([torch.zeros_like(g[:, :, :1]), g[:, :, :-1]], dim=2)  # G_{s-1}, with G_{-1} = 0
    starts = torch.arange(0, source, BLOCK, device=q.device)
    block_of = torch.arange(source, device=q.device) // BLOCK
    start_g = g_prev[:, :, starts]  # R_j = G just before block j
    end_g = g[:, :, (starts + BLOCK).clamp(max=source) - 1]  # E_j = G at the end of block j
    # Every exponent below is <= 0: one factor per block for keys, one per block pair, one for queries.
    k_past = kf * (end_g[:, :, block_of] - g).exp().float()  # exp(E_j - G_s)
    k_future = kf * (g_prev - start_g[:, :, block_of]).exp().float()  # exp(G_{s-1} - R_j)
    weights = q.new_zeros((*q.shape[:2], length, source), dtype=torch.float32)
    for i, t0 in enumerate(range(0, length, BLOCK)):
        t1 = min(length, t0 + BLOCK)
        q_blk, g_blk = qf[:, :, t0:t1], g[:, :, t0:t1]
        if i:
            pair = (start_g[:, :, i : i + 1] - end_g[:, :, :i]).exp().float()  # exp(R_i - E_j), j < i
            left = q_blk * (g_blk - start_g[:, :, i : i + 1]).exp().float()
            right = k_past[:, :, :t0] * pair.repeat_interleave(BLOCK, dim=2)
            weights[:, :, t0:t1, :t0] = left @ right.transpose(-1, -2)
        base = start_g[:, :, i : i + 1]
        weights[:, :, t0:t1, t0:t1] = _diagonal_block(
            q_blk, kf[:, :, t0:t1], g_blk - base, g_prev[:, :, t0:t1] - base, mode
        )
        if mode == "bidirectional" and t1 < source:
            pair = (start_g[:, :, i + 1 :] - end_g[:, :, i : i + 1]).exp().float()  # exp(R_j - E_i), j > i
            left = q_blk * (end_g[:, :, i : i + 1] - g_blk).exp().float()
            right = k_future[:, :, t1:] * pair.repeat_interleave(BLOCK, dim=2)[:, :, : source - t1]
            weights[:, :, t0:t1, t1:] = left @ right.transpose(-1, -2)
    return weights


def _diagonal_block(q: Tensor, k: Tensor, g: Tensor, g_prev: Tensor, mode: str) -> Tensor:
    """Scores inside one block (``g`` relative to the block start): the chunked scan's causal scores,
    plus, for bidirectional, the strictly-future pairs evaluated pairwise with masked exponents."""
    size = q.shape[2]
    pad = (-size) % SUB_CHUNK
    padded = [torch.nn.functional.pad(t, (0, 0, 0, pad)) for t in (q, k, g.float())]
    scores = intra_chunk_scores(*padded)[:, :, :size, :size]
    if mode != "bidirectional":
        return scores
    t_idx = torch.arange(size, device=q.device)
    future = (t_idx[None, :] > t_idx[:, None])[..., None]  # [t, s, 1]
    exponent = torch.where(future, g_prev.unsqueeze(2) - g.unsqueeze(3), float("-inf"))  # G_{s-1} - G_t
    ahead = torch.einsum("bhtd,bhtsd->bhts", q, exponent.exp().float() * k.unsqueeze(2))
    return scores + ahead


def attention_weights(
    q: Tensor, k: Tensor, log_a: Tensor, mode: str, *, average: bool, unbatched: bool
) -> Tensor | None:
    """``need_weights=True``'s return value: ``implicit_attention`` in ``q``'s dtype, averaged over heads if asked;
    ``None`` (and one warning per process) when ``L·S`` exceeds ``MAX_WEIGHT_ELEMENTS``."""
    if q.shape[2] * k.shape[2] > MAX_WEIGHT_ELEMENTS:
        global _warned_weights
        if not _warned_weights:
            _warned_weights = True
            warnings.warn(
                f"need_weights=True but L·S = {q.shape[2] * k.shape[2]} > 2^24: returning None for the "
                "attention weights (pass need_weights=False to skip this check)",
                stacklevel=4,
            )
        return None
    with torch.no_grad():
        weights = implicit_attention(q, k, log_a, mode).to(q.dtype)
    if average:
        weights = weights.mean(dim=1)
    return weights.squeeze(0) if unbatched else weights
