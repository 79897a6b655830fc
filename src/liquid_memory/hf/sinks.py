"""Attention sinks: the first ``n`` real tokens of a sequence stay exact softmax keys for every later query.

Pretrained softmax models park a large, context-independent share of their attention on the first token
(SmolLM2: 25–56 % of every query's mass in layers 12–29 at 2048 tokens; StreamingLLM calls these
"attention sinks"). A decaying recurrence cannot hold a key at a fixed weight forever, so the hybrid keeps
the first ``n`` non-padded keys exact beside the sliding window: they take part in the window part's
softmax for every query (once: a sink still inside the window counts as a window key), and they never
enter the liquid state (treated there like padding: no contribution, no decay). The decode cache keeps
their rotated keys and values — ``n`` tokens, a constant size. With ``window = 0`` the sinks are the only
exact keys: each query reads them by softmax and every other key (itself included) from the state.

Positions here are indices into the key tensor of the current call (``k``: cached window keys followed by
the new keys); a stored sink older than the cached window has a negative index.
"""

from __future__ import annotations

import torch
from torch import Tensor


def sink_mask(valid: Tensor, n: int, seen: Tensor | None = None) -> Tensor:
    """``[B, L]`` bool: the keys among the first ``n`` valid keys of the sequence.

    ``valid``: ``[B, L]`` (True = real token); ``seen``: ``[B]`` valid keys before these (``None`` = 0)."""
    rank = valid.long().cumsum(-1)
    if seen is not None:
        rank = rank + seen[:, None]
    return valid & (rank <= n)


def gather_sinks(k: Tensor, v: Tensor, mask: Tensor, n: int) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """``(keys [B, Hkv, n, d], values, positions [B, n], ok [B, n])`` of the (at most ``n``) keys in ``mask``.

    Slots without a sink have ``ok = False`` (their key/value/position are placeholders)."""
    b, length = mask.shape
    order = torch.argsort((~mask).to(torch.int8), dim=1, stable=True)[:, :n]  # sink positions first, in order
    if length < n:
        order = torch.cat([order, order.new_zeros((b, n - length))], dim=1)
    ok = mask.gather(1, order) & (torch.arange(n, device=mask.device)[None] < length)
    index = order[:, None, :, None].expand(b, k.shape[1], n, k.shape[-1])
    return k.gather(2, index), v.gather(2, index), order, ok


def merge_sinks(first: tuple[Tensor, ...], second: tuple[Tensor, ...], n: int) -> tuple[Tensor, ...]:
    """The first ``n`` present slots of ``first`` followed by ``second`` (same layout as ``gather_sinks``)."""
    k = torch.cat([first[0], second[0]], dim=2)
    v = torch.cat([first[1], second[1]], dim=2)
    pos = torch.cat([first[2], second[2]], dim=1)
    ok = torch.cat([first[3], second[3]], dim=1)
    order = torch.argsort((~ok).to(torch.int8), dim=1, stable=True)[:, :n]
    index = order[:, None, :, None].expand(k.shape[0], k.shape[1], n, k.shape[-1])
    return k.gather(2, index), v.gather(2, index), pos.gather(1, order), ok.gather(1, order)


def mark(positions: Tensor, ok: Tensor, length: int) -> Tensor:
    """``[B, length]`` bool: True at the present sink positions that fall inside ``0 … length-1``."""
    inside = ok & (positions >= 0) & (positions < length)
    hits = torch.zeros((positions.shape[0], length), dtype=torch.long, device=positions.device)
    hits.scatter_add_(1, positions.clamp(0, max(length - 1, 0)), inside.long())
    return hits > 0
