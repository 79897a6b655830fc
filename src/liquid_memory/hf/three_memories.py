"""The three-memory hybrid's forward: window + sinks + global cache by softmax, the liquid state by its feature map.

One call (a prefill, a chunk or one decode token) walks its queries in groups that share a boundary
(``global_cache.boundary``): before each group the blocks that left the window depart (``global_cache.depart``:
the cache is re-selected, the rest enters the state), then the group reads its window keys, the sinks older
than the boundary and the cache exactly, and the state, in one normaliser (``hybrid.combine``). While a key is
a window key, the attention probability each query gives it is summed (with the number of queries that saw
it): the cache's ``"attention"`` score. The math is in ``global_cache.py``.
"""

from __future__ import annotations

import torch
from torch import Tensor

from liquid_memory.hf.global_cache import OBSERVED, ImportanceBoard, Slots, boundary, depart, prompt_scores
from liquid_memory.hf.hybrid import TINY, combine


def exact_part(
    q: Tensor, qpos: Tensor, keys: Tensor, values: Tensor, kpos: Tensor, kvalid: Tensor,
    extra: list[tuple[Tensor, Tensor, Tensor]], scaling: float,
) -> tuple[tuple[Tensor, Tensor, Tensor], Tensor, Tensor]:  # fmt: skip
    """Unnormalised softmax ``((A [B,H,n,d], Z [B,H,n], m [B,H,n]), e, allowed)`` of a query group over its window
    keys (causal: ``kpos ≤ qpos``; ``kvalid`` ``[B, L]`` marks the row's real keys at or after its boundary) and
    ``extra`` key sets ``(keys [B,Hkv,M,d], values, ok [B,Hkv,M])`` visible to every query of the group (the
    sinks older than the boundary, the cache). ``e = e^{s - m}`` and ``allowed`` ``[B, Hkv, G, n, L]`` cover the
    window keys only (the attention score's raw material)."""
    b, h, n, d = q.shape
    hkv = keys.shape[1]
    qg = q.view(b, hkv, h // hkv, n, d)
    scores = torch.einsum("bkgtd,bksd->bkgts", qg, keys) * scaling
    allowed = (kpos[None, :] <= qpos[:, None])[None, None, None] & kvalid[:, None, None, None, :]
    vals = [values.expand(b, -1, -1, -1)]
    scores_all, allowed_all = [scores], [allowed.expand(b, hkv, 1, n, -1)]
    for ek, ev, eok in extra:
        scores_all.append(torch.einsum("bkgtd,bkmd->bkgtm", qg, ek) * scaling)
        allowed_all.append(eok[:, :, None, None, :].expand(-1, -1, 1, n, -1))
        vals.append(ev)
    scores = torch.cat(scores_all, -1)
    allowed = torch.cat([a.expand(b, hkv, h // hkv, n, -1) for a in allowed_all], -1)
    scores = scores.masked_fill(~allowed, float("-inf"))
    m = scores.amax(-1, keepdim=True)
    e = torch.exp(scores - torch.where(torch.isfinite(m), m, torch.zeros_like(m)))
    a = torch.einsum("bkgts,bksd->bkgtd", e, torch.cat(vals, 2))
    length = keys.shape[2]
    win = (a.reshape(b, h, n, d), e.sum(-1).reshape(b, h, n), m.squeeze(-1).reshape(b, h, n))
    return win, e[..., :length], allowed[..., :length]


def _unscored(like: Tensor, b: int, hkv: int, n: int) -> Tensor:
    """``received`` of ``n`` new keys: no attention yet, no queries, no ``"prompt"`` score (-1)."""
    fresh = like.new_zeros((b, hkv, n, 3))
    fresh[..., 2] = -1.0
    return fresh


def read_state(phi_q: Tensor, state: Tensor) -> Tensor:
    """``S^T φ_q`` for every query head of each group: ``[B, H, n, D]`` against ``[B, Hkv, D, D]``."""
    b, h, n, dim = phi_q.shape
    hkv = state.shape[1]
    qg = phi_q.view(b, hkv, h // hkv, n, dim).to(state.dtype)
    return torch.einsum("bkgtd,bkde->bkgte", qg, state).reshape(b, h, n, dim)


def forward_blocks(
    q: Tensor, k: Tensor, v: Tensor, log_a: Tensor, valid: Tensor, liquid_valid: Tensor,
    sinks: tuple[Tensor, Tensor, Tensor, Tensor] | None, n_cached: int, base: int, state: Tensor | None,
    slots: Slots | None, bounds: tuple[Tensor, Tensor] | None, received: Tensor | None, *, window: int, block: int,
    n_slots: int, score: str, scaling: float, beta: Tensor, feature_q, feature_k, backend: str | None,
    read_liquid: bool = True, board: ImportanceBoard | None = None,
) -> tuple[Tensor, Tensor | None, Slots, tuple[Tensor, Tensor], Tensor]:  # fmt: skip
    """The three-memory hybrid for one call: ``(y [B, H, T, d], state, slots, (origin, first), received)``.

    ``q``: the ``T`` new queries ``[B, H, T, d]``; ``k``, ``v`` ``[B, Hkv, L, d]`` and ``log_a`` ``[B, Hkv, L, D]``:
    the held keys followed by the new ones, ``k[..., 0, :]`` at absolute position ``base``. ``valid``: real tokens
    ``[B, L]``; ``liquid_valid``: real non-sink tokens (the candidates of the cache and the state); ``sinks`` as
    ``sinks.gather_sinks`` makes them (positions relative to ``k``); ``beta``: ``[H]`` or ``[B, H, T]``. ``bounds``:
    per row, the absolute position of its first real key (``-1``: none yet) and its boundary; ``received``: ``[B,
    Hkv, L_held, 3]`` attention summed over the queries that saw each held key, their count and the key's
    ``"prompt"`` score (``-1``: none) — both as the previous call returned them (``None`` at the start). A
    ``log_a`` of width 0 (a ``mode="window"`` call without a state to keep): no state is kept (``None`` returned)
    and the slots hold no decays; evicted pairs are dropped, which changes nothing the exact read sees. ``board``:
    the model's ``ImportanceBoard`` (started by the caller for this call's keys when it is the first layer). The
    caller keeps the keys (and ``received``) from absolute position ``first.min()`` on."""
    b, h, t, d = q.shape
    hkv, length = k.shape[1], k.shape[2]
    g, dim, dev = h // hkv, 2 * d, q.device
    keeps_state = log_a.shape[-1] > 0  # zero-width decays: the exact memories only, no state (mode="window")
    if state is None and keeps_state:
        state = q.new_zeros((b, hkv, dim, dim))
    if slots is None:
        slots = Slots.empty(k, n_slots, log_a.shape[-1], q.dtype)
    if bounds is None:
        bounds = (torch.full((b,), -1, device=dev), torch.full((b,), base, device=dev))
    prev = received if received is not None else _unscored(q, b, hkv, n_cached)
    received = torch.cat([prev, _unscored(q, b, hkv, length - prev.shape[2])], 2)
    origin, first = bounds
    here = torch.where(valid.any(1), valid.to(torch.int8).argmax(1) + base, -1)
    origin = torch.where(origin >= 0, origin, here)
    first = torch.maximum(first, torch.where(origin >= 0, origin, base + length))  # padding leaves at once
    log_a = torch.where(liquid_valid[:, None, :, None], log_a, 0.0)
    positions = torch.arange(base, base + length, device=dev)
    steps = torch.arange(block, device=dev)
    if score == "prompt" and t > 1:  # the call's last queries rank its keys and the cache (a prefill call only)
        n_obs = min(OBSERVED, t)
        chosen, held = prompt_scores(q[:, :, t - n_obs :], positions[length - n_obs :], valid[:, length - n_obs :], k,
                                     positions, liquid_valid, slots, scaling)  # fmt: skip
        slots = Slots(*slots.tensors()[:-1], torch.where(slots.ok, held, slots.score))
        received[..., 2] = chosen  # a key still in the window keeps its score until it leaves, in a later call
    outs, i = [], 0
    while i < t:
        now = base + n_cached + i
        while True:  # whole blocks leave the window before this query group (each row on its own blocks)
            moving = (boundary(torch.full_like(first, now), window, block, origin.clamp_min(0)) > first) & (origin >= 0)
            if not bool(moving.any()):
                break
            index = (first - base)[:, None] + steps  # [B, C]
            safe = index.clamp(0, length - 1)
            ok = moving[:, None] & liquid_valid.gather(1, safe) & (index < length)

            def rows(x: Tensor, safe=safe) -> Tensor:
                return x.gather(2, safe[:, None, :, None].expand(b, x.shape[1], block, x.shape[-1]))

            seen = rows(received)
            attention = seen[..., 0] / seen[..., 1].clamp_min(1.0) * max(window, 1)
            attention = torch.where(seen[..., 2] >= 0, seen[..., 2], attention)  # scored by a prompt: that score
            if board is not None and board.covers(b, base, length):  # the same token's score in the layers below
                below = board.values.gather(1, safe)
                board.values.scatter_(1, safe, torch.maximum(below, attention.amax(1) * moving[:, None]))
                attention = torch.maximum(attention, below[:, None, :])
            piece = (rows(k), rows(v), rows(log_a) * moving[:, None, None, None], positions[safe],
                     ok[:, None].expand(b, hkv, block), attention)  # fmt: skip
            ranking = "recall" if score == "recall" else "attention"  # "prompt" ranks by its own "attention" here
            state, slots = depart(state, slots, piece, feature_k, backend, ranking)
            first = first + block * moving
        end = min(t, int((first + block + window - 1).min()) - base - n_cached)
        j0, j1 = int(first.min()) - base, n_cached + end
        in_window = valid[:, j0:j1] & (positions[None, j0:j1] >= first[:, None])
        extra = [(slots.keys, slots.values, slots.ok)]
        if sinks is not None:
            sk, sv, spos, sok = sinks
            extra.append((sk, sv, (sok & (spos + base < first[:, None]))[:, None, :].expand(b, hkv, -1)))
        win, e, allowed = exact_part(q[:, :, i:end], positions[n_cached + i : n_cached + end], k[:, :, j0:j1],
                                     v[:, :, j0:j1], positions[j0:j1], in_window, extra, scaling)  # fmt: skip
        if read_liquid:
            if state is None:
                raise ValueError("read_liquid needs the decays (log_a of width 2d): this call keeps no state")
            lin = read_state(feature_q(q[:, :, i:end]), state)
            y, share = combine(win, lin, beta if beta.dim() == 1 else beta[:, :, i:end], d, exact_share=True)
        else:
            share = 1.0 / win[1].clamp_min(TINY)
            y = win[0] * share.unsqueeze(-1)
        with torch.no_grad():  # the score only ranks keys: no gradient flows through the selection
            asking = valid[:, n_cached + i : n_cached + end]  # padded queries give no attention
            share = share.view(b, hkv, g, -1) * asking[:, None, None, :]
            received[:, :, j0:j1, 0] += torch.einsum("bkgts,bkgt->bks", e.detach(), share.detach())
            received[:, :, j0:j1, 1] += (allowed & asking[:, None, None, :, None]).sum((2, 3))
        outs.append(y)
        i = end
    return torch.cat(outs, 2), state, slots, (origin, first), received
