"""The hybrid's third memory: a constant-size global cache of the exact key/value pairs the state recalls worst.

A recurrence with a fixed-size state mixes every key that enters it; an unusual fact read 2,000 tokens ago
(a pass key) is blurred by everything after it. LoLA (McDermott, Heath, Parhi, 2025) keeps, beside the
sliding window and the linear state, a small sparse cache of the key/value pairs the state would recall
worst, read exactly. This module is that memory for the liquid hybrid (``hybrid.py`` has the two others).

Per layer, batch row and KV head (GQA: the ``G`` query heads of a group share it), with ``W`` the window,
``C`` the block (departure granularity), ``N`` the number of slots and ``σ`` the sink keys:

- **Boundary.** Keys depart the exact window in whole blocks of ``C`` positions, counted from the row's
  first real token ``o`` (so a left-padded row behaves exactly as the same sequence alone): for query ``t``
  the boundary is ``P(t) = o + C·⌊max(t - o - W + 1, 0) / C⌋``; keys ``P(t) ≤ s ≤ t`` are window keys
  (``W`` to ``W + C - 1`` of them). ``C = 1`` is the plain hybrid's window (``P(t) = t - W + 1``).
- **Departure.** When the boundary moves from ``P`` to ``P + C``, the block ``B = [P, P + C)`` leaves the
  window. The candidates are the cache ``G(P)`` plus the block's valid non-sink keys. Each candidate's
  self-recall error is measured against the state before the block, ``S = S(P)``::

      [n_x, d_x] = S^T φ_k(k_x)          r_x = n_x / d_x  (0 when d_x = 0)          e_x = ‖v_x - r_x‖²

  ``G(P + C)`` = the ``N`` candidates with the largest ``e_x`` (the best-recalled are evicted); every other
  candidate enters the state with the decay it would have had there since its own position::

      S(P + C) = diag(Π_{r∈B} a_r) S(P) + Σ_{x evicted} (Π_{r=x+1..P+C-1} a_r ⊙ φ_k(k_x)) [v_x, 1]^T

  so the state always equals the plain hybrid's state minus the keys held exactly (cache and sinks): the
  three memories partition the keys older than the window. Sink and padded keys never enter either
  (``a = 1``, no contribution), exactly as in ``hybrid.py``.
- **Read.** Query ``t`` (query head ``h``) reads the window keys, the sinks older than ``P(t)`` and the
  cache ``G(P(t))`` by softmax, and the state by its feature map, in one shared normaliser::

      y_t = (Σ_exact e^{s_ts} v_s + e^{β_h} N_t) / (Σ_exact e^{s_ts} + e^{β_h} D_t),   [N_t, D_t] = S(P(t))^T φ_q(q_t)

  (``s_ts = q_t·k_s/√d``); with the liquid read switched off (``mode="window"``) the ``e^{β}`` terms drop.

The state update of a departure runs through ``liquid_scan`` (the licensed kernels, or the reference
backend when chosen): one step decays the state by the block, the following add the evicted keys. Decode and
prefill run the same departures on the same blocks, so they agree to rounding (tested against a float64
recomputation of the formulas above). The decode state holds at most ``W + C - 1`` window keys, ``N`` slots
(key, value, decay since its position, position) and the state: its size never depends on the context.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from liquid_memory.hf.hybrid import TINY, combine, pad_values
from liquid_memory.ops.dispatch import liquid_scan

DEFAULT_BLOCK = 64  # departure granularity C: one selection per C tokens (window = W … W + C - 1 keys)


@dataclass
class Slots:
    """The global cache of one layer: ``N`` slots per batch row and KV head (``ok`` False = empty slot)."""

    keys: Tensor  # [B, Hkv, N, d] after RoPE
    values: Tensor  # [B, Hkv, N, d]
    log_decay: Tensor  # [B, Hkv, N, D]: Σ log a from the key's position to the state's current end
    positions: Tensor  # [B, Hkv, N] absolute position (-1 when empty)
    ok: Tensor  # [B, Hkv, N] bool

    @classmethod
    def empty(cls, like_k: Tensor, n: int, feature_dim: int, acc: torch.dtype) -> Slots:
        b, hkv, _, d = like_k.shape
        z = like_k.new_zeros((b, hkv, n, d), dtype=acc)
        return cls(z, z.clone(), like_k.new_zeros((b, hkv, n, feature_dim), dtype=acc),
                   torch.full((b, hkv, n), -1, dtype=torch.long, device=like_k.device),
                   torch.zeros((b, hkv, n), dtype=torch.bool, device=like_k.device))  # fmt: skip

    def nbytes(self) -> int:
        return sum(t.numel() * t.element_size() for t in (self.keys, self.values, self.log_decay, self.positions,
                                                            self.ok))  # fmt: skip

    def detached(self) -> Slots:
        return Slots(*(t.detach() for t in (self.keys, self.values, self.log_decay, self.positions, self.ok)))


def boundary(t: Tensor | int, window: int, block: int, origin: Tensor | int = 0) -> Tensor | int:
    """``P(t)``: the first window key of query ``t`` for a row whose first real key is ``origin`` (absolute)."""
    if isinstance(t, int) and isinstance(origin, int):
        return origin + block * (max(t - origin - window + 1, 0) // block)
    return origin + block * torch.div((t - origin - window + 1).clamp_min(0), block, rounding_mode="floor")


def recall_error(phi_k: Tensor, values: Tensor, state: Tensor) -> Tensor:
    """``‖v - S^T φ_k(k) normalised‖²`` per candidate: ``phi_k`` ``[B, Hkv, M, D]``, ``values`` ``[B, Hkv, M, d]``."""
    d = values.shape[-1]
    read = torch.einsum("bkmD,bkDE->bkmE", phi_k.to(state.dtype), state)
    num, den = read[..., :d], read[..., d]
    recalled = torch.where((den > TINY).unsqueeze(-1), num / den.clamp_min(TINY).unsqueeze(-1), 0.0)
    return (values.to(state.dtype) - recalled).pow(2).sum(-1)


def depart(state: Tensor, slots: Slots, block: tuple[Tensor, Tensor, Tensor, Tensor, Tensor],
           feature_k, backend: str | None) -> tuple[Tensor, Slots]:  # fmt: skip
    """One block leaves the window: select the cache among (cache ∪ block), the rest enters the state.

    ``block``: ``(keys [B,Hkv,C,d], values, log_a [B,Hkv,C,D], positions [B,C], ok [B,Hkv,C])`` with ``log_a = 0``
    at padded and sink keys and in rows that do not depart now (``ok`` False there: their cache and state stay
    as they are). ``feature_k`` maps keys ``[B,Hkv,M,d]`` to ``[B,Hkv,M,D]``."""
    bk, bv, blog_a, bpos, bok = block
    n = slots.keys.shape[2]
    acc = state.dtype
    b, hkv, c, d = bk.shape
    keys = torch.cat([slots.keys, bk.to(acc)], 2)
    values = torch.cat([slots.values, bv.to(acc)], 2)
    ok = torch.cat([slots.ok, bok], 2)
    positions = torch.cat([slots.positions, bpos[:, None].expand(b, hkv, c)], 2)
    total = blog_a.sum(2, keepdim=True)  # [B, Hkv, 1, D]: the block's decay
    suffix = total - blog_a.cumsum(2)  # Σ_{r=x+1..end} log a_r for the block's own keys
    log_decay = torch.cat([slots.log_decay + total, suffix], 2)
    phi = feature_k(keys)
    err = recall_error(phi, values, state).masked_fill(~ok, float("-inf"))
    kept = err.topk(n, dim=-1).indices.sort(dim=-1).values  # slot order = candidate order (deterministic)
    keep = torch.zeros_like(ok).scatter_(2, kept, True)
    evict = ok & ~keep
    # the update as a scan: step 0 decays the state by the block (and adds candidate 0); the others add
    weight = torch.where(evict.unsqueeze(-1), torch.exp(log_decay), 0.0)
    step_log_a = torch.zeros_like(phi)
    step_log_a[:, :, :1] = total
    zeros = torch.zeros_like(phi)
    _, new_state = liquid_scan(zeros, weight * phi, pad_values(values, phi.shape[-1]) * evict.unsqueeze(-1),
                               step_log_a, initial_state=state, output_final_state=True, backend=backend)  # fmt: skip

    def pick(x: Tensor) -> Tensor:
        index = kept.view(*kept.shape, *([1] * (x.dim() - 3))).expand(*kept.shape, *x.shape[3:])
        return x.gather(2, index)

    new = Slots(pick(keys), pick(values), pick(log_decay), pick(positions), pick(ok))
    return new_state, new


def exact_part(
    q: Tensor, qpos: Tensor, keys: Tensor, values: Tensor, kpos: Tensor, kvalid: Tensor,
    extra: list[tuple[Tensor, Tensor, Tensor]], scaling: float,
) -> tuple[Tensor, Tensor, Tensor]:  # fmt: skip
    """Unnormalised softmax ``(A [B,H,n,d], Z [B,H,n], m [B,H,n])`` of a query group over its window keys
    (causal: ``kpos ≤ qpos``; ``kvalid`` ``[B, L]`` marks the row's real keys at or after its boundary) and
    ``extra`` key sets ``(keys [B,Hkv,M,d], values, ok [B,Hkv,M])`` visible to every query of the group (the
    sinks older than the boundary, the cache)."""
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
    return a.reshape(b, h, n, d), e.sum(-1).reshape(b, h, n), m.squeeze(-1).reshape(b, h, n)


def read_state(phi_q: Tensor, state: Tensor) -> Tensor:
    """``S^T φ_q`` for every query head of each group: ``[B, H, n, D]`` against ``[B, Hkv, D, D]``."""
    b, h, n, dim = phi_q.shape
    hkv = state.shape[1]
    qg = phi_q.view(b, hkv, h // hkv, n, dim).to(state.dtype)
    return torch.einsum("bkgtd,bkde->bkgte", qg, state).reshape(b, h, n, dim)


def forward_blocks(
    q: Tensor, k: Tensor, v: Tensor, log_a: Tensor, valid: Tensor, liquid_valid: Tensor,
    sinks: tuple[Tensor, Tensor, Tensor, Tensor] | None, n_cached: int, base: int, state: Tensor | None,
    slots: Slots | None, bounds: tuple[Tensor, Tensor] | None, *, window: int, block: int, n_slots: int,
    scaling: float, beta: Tensor, feature_q, feature_k, backend: str | None, read_liquid: bool = True,
) -> tuple[Tensor, Tensor, Slots, tuple[Tensor, Tensor]]:  # fmt: skip
    """The three-memory hybrid for one call: ``(y [B, H, T, d], state, slots, (origin, first))``.

    ``q``: the ``T`` new queries ``[B, H, T, d]``; ``k``, ``v`` ``[B, Hkv, L, d]`` and ``log_a`` ``[B, Hkv, L, D]``:
    the held keys followed by the new ones, ``k[..., 0, :]`` at absolute position ``base``. ``valid``: real
    tokens ``[B, L]``; ``liquid_valid``: real non-sink tokens (the candidates of the cache and the state);
    ``sinks`` as ``sinks.gather_sinks`` makes them (positions relative to ``k``); ``beta``: ``[H]`` or
    ``[B, H, T]``. ``bounds``: per row, the absolute position of its first real key (``-1``: none yet) and
    its boundary, as the previous call returned them (``None`` at the start). The caller keeps the keys from
    absolute position ``first.min()`` on: every row's window starts there or later."""
    b, h, t, d = q.shape
    hkv, length = k.shape[1], k.shape[2]
    dim, dev = 2 * d, q.device
    if state is None:
        state = q.new_zeros((b, hkv, dim, dim))
    if slots is None:
        slots = Slots.empty(k, n_slots, dim, q.dtype)
    if bounds is None:
        bounds = (torch.full((b,), -1, device=dev), torch.full((b,), base, device=dev))
    origin, first = bounds
    here = torch.where(valid.any(1), valid.to(torch.int8).argmax(1) + base, -1)
    origin = torch.where(origin >= 0, origin, here)
    first = torch.maximum(first, torch.where(origin >= 0, origin, base + length))  # padding leaves at once
    log_a = torch.where(liquid_valid[:, None, :, None], log_a, 0.0)
    positions = torch.arange(base, base + length, device=dev)
    steps = torch.arange(block, device=dev)
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

            piece = (rows(k), rows(v), rows(log_a) * moving[:, None, None, None], positions[safe],
                     ok[:, None].expand(b, hkv, block))  # fmt: skip
            state, slots = depart(state, slots, piece, feature_k, backend)
            first = first + block * moving
        end = min(t, int((first + block + window - 1).min()) - base - n_cached)
        j0, j1 = int(first.min()) - base, n_cached + end
        in_window = valid[:, j0:j1] & (positions[None, j0:j1] >= first[:, None])
        extra = [(slots.keys, slots.values, slots.ok)]
        if sinks is not None:
            sk, sv, spos, sok = sinks
            extra.append((sk, sv, (sok & (spos + base < first[:, None]))[:, None, :].expand(b, hkv, -1)))
        win = exact_part(q[:, :, i:end], positions[n_cached + i : n_cached + end], k[:, :, j0:j1], v[:, :, j0:j1],
                         positions[j0:j1], in_window, extra, scaling)  # fmt: skip
        if read_liquid:
            lin = read_state(feature_q(q[:, :, i:end]), state)
            y = combine(win, lin, beta if beta.dim() == 1 else beta[:, :, i:end], d)
        else:
            y = win[0] / win[1].clamp_min(TINY).unsqueeze(-1)
        outs.append(y)
        i = end
    return torch.cat(outs, 2), state, slots, (origin, first)
