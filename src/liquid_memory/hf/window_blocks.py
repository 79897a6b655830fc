"""The hybrid's window part (``hybrid.py``'s ``window_part``) for fp32 inference: all query blocks in one fused
attention call.

Query block ``i`` (``block`` queries) sees the ``block + W - 1`` keys that end at its last query, plus the sinks.
Stacking the blocks along the batch dimension — queries ``[B·n, Hkv, G·block, d]``, their keys as overlapping
windows of the key sequence, one additive mask ``[B·n, 1, G·block, keys]`` built for all blocks at once — makes the
window part one call of torch's CPU flash attention, which also returns each row's log-sum-exp ``l``: ``(y, 1, l)``
is ``window_part``'s ``(A, Z, m)`` with the shift ``l`` instead of the maximum. A block loop paid ≈ 20 small tensor
ops per block around each attention call (masks, concatenations): at SmolLM2's 1K-token prefill ≈ 4 ms per layer,
as much as the attention itself. Long prompts go in chunks of ``CHUNK_BLOCKS`` blocks (the stacked keys and mask
stay small). Rows with no visible key (padding) get ``(0, 0, -inf)``, as in the reference.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

CHUNK_BLOCKS = 32  # query blocks per fused call (2048 queries at block 64)
_flash = torch.ops.aten._scaled_dot_product_flash_attention_for_cpu


def fused_window_part(
    q: Tensor, k: Tensor, v: Tensor, valid: Tensor, n_cached: int, window: int, scaling: float, sinks,
    block: int,
) -> tuple[Tensor, Tensor, Tensor]:  # fmt: skip
    """``window_part``'s ``(A, Z, m)`` (its arguments; ``window >= 1``), in chunks of ``CHUNK_BLOCKS`` blocks."""
    t = q.shape[2]
    chunk = CHUNK_BLOCKS * block
    parts = []
    for c0 in range(0, t, chunk):
        c1 = min(t, c0 + chunk)
        start = max(0, n_cached + c0 - window + 1)  # the chunk's first key
        part_sinks = None
        if sinks is not None:
            part_sinks = (sinks[0], sinks[1], sinks[2] - start, sinks[3])  # positions in the slice's coordinates
        parts.append(_chunk(q[:, :, c0:c1], k[:, :, start : n_cached + c1], v[:, :, start : n_cached + c1],
                            valid[:, start : n_cached + c1], n_cached + c0 - start, window, scaling, part_sinks,
                            block))  # fmt: skip
    if len(parts) == 1:
        return parts[0]
    y, lse = torch.cat([p[0] for p in parts], 2), torch.cat([p[2] for p in parts], 2)
    return y, torch.isfinite(lse).to(y.dtype), lse


def _chunk(q, k, v, valid, n_cached, window, scaling, sinks, block) -> tuple[Tensor, Tensor, Tensor]:
    b, h, t, d = q.shape
    hkv, length = k.shape[1], k.shape[2]
    g = h // hkv
    n = -(-t // block)  # blocks; the last one padded with zero queries (their rows are dropped)
    span = block + window - 1  # keys per block
    tail = max(0, n_cached + n * block - length)
    rows = F.pad(q * scaling, (0, 0, 0, n * block - t)).view(b, hkv, g, n, block, d)
    rows = rows.permute(0, 3, 1, 2, 4, 5).reshape(b * n, hkv, g * block, d)

    def windows(x: Tensor) -> Tensor:  # [B, Hkv, L, d] -> [B, n, Hkv, span, d]: block i's keys
        padded = F.pad(x, (0, 0, window - 1, tail))[:, :, n_cached:]
        return padded.unfold(2, span, block)[:, :, :n].permute(0, 2, 1, 4, 3)

    keys, vals = windows(k), windows(v)
    qpos = n_cached + torch.arange(n * block, device=q.device).view(n, block, 1)
    kpos = n_cached - window + 1 + (torch.arange(n, device=q.device) * block)[:, None, None]
    kpos = kpos + torch.arange(span, device=q.device)  # [n, 1, span]
    key_ok = F.pad(valid, (window - 1, tail), value=False)[:, n_cached:].unfold(1, span, block)[:, :n]
    allowed = (kpos <= qpos) & (kpos > qpos - window) & key_ok[:, :, None, :]  # [B, n, block, span]
    if sinks is not None:  # exact sink keys older than the window (younger ones are window keys)
        sk, sv, spos, sok = sinks
        ns = sk.shape[2]
        keys = torch.cat([keys, sk[:, None].expand(b, n, hkv, ns, d)], 3)
        vals = torch.cat([vals, sv[:, None].expand(b, n, hkv, ns, d)], 3)
        s_allowed = sok[:, None, None, :] & (spos[:, None, None, :] <= qpos[None] - window)
        allowed = torch.cat([allowed, s_allowed], -1)
    nk = keys.shape[3]
    keys, vals = keys.reshape(b * n, hkv, nk, d), vals.reshape(b * n, hkv, nk, d)
    bias = torch.zeros(allowed.shape, dtype=q.dtype, device=q.device).masked_fill_(~allowed, -math.inf)
    bias = bias[:, :, None].expand(b, n, g, block, nk).reshape(b * n, 1, g * block, nk)
    y, lse = _flash(rows, keys, vals, 0.0, False, attn_mask=bias, scale=1.0)
    y = y.view(b, n, hkv, g, block, d).permute(0, 2, 3, 1, 4, 5).reshape(b, h, n * block, d)[:, :, :t]
    lse = lse.view(b, n, hkv, g, block).permute(0, 2, 3, 1, 4).reshape(b, h, n * block)[:, :, :t]
    seen = allowed.any(-1).view(b, 1, n * block)[:, :, :t]  # rows with a visible key
    if not bool(seen.all()):
        y = y.masked_fill(~seen[..., None], 0.0)
        lse = lse.masked_fill(~seen, -math.inf)
    return y, torch.isfinite(lse).to(q.dtype), lse
