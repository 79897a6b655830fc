"""The hybrid's third memory: a constant-size global cache of exact key/value pairs, and how pairs are chosen.

A recurrence with a fixed-size state mixes every key that enters it; an unusual fact read 2,000 tokens ago
(a pass key) is blurred by everything after it. LoLA (McDermott, Heath, Parhi, 2025) keeps, beside the
sliding window and the linear state, a small sparse cache of key/value pairs read exactly. This module is
that memory for the liquid hybrid (``hybrid.py`` has the window and the state; ``three_memories.py`` reads
all three).

Per layer, batch row and KV head (GQA: the ``G`` query heads of a group share it), with ``W`` the window,
``C`` the block (departure granularity), ``N`` the number of slots and ``σ`` the sink keys:

- **Boundary.** Keys depart the exact window in whole blocks of ``C`` positions, counted from the row's
  first real token ``o`` (so a left-padded row behaves exactly as the same sequence alone): for query ``t``
  the boundary is ``P(t) = o + C·⌊max(t - o - W + 1, 0) / C⌋``; keys ``P(t) ≤ s ≤ t`` are window keys
  (``W`` to ``W + C - 1`` of them). ``C = 1`` is the plain hybrid's window (``P(t) = t - W + 1``).
- **Departure.** When the boundary moves from ``P`` to ``P + C``, the block ``B = [P, P + C)`` leaves the
  window. The candidates are the cache ``G(P)`` plus the block's valid non-sink keys; ``G(P + C)`` = the
  ``N`` candidates with the highest score (ties: the earlier candidate). Three scores (``cache_score``):

  - ``"attention"`` — how much attention the key received while it was a window key: the mean attention
    probability over the queries that saw it and the ``G`` query heads of its group (``p_ts`` below, the
    share of query ``t``'s normaliser), times ``max(W, 1)`` (1 = what a uniform window would give). A key the
    next ``W..W+C`` queries attended to strongly is one later queries will look for: on SmolLM2 the pass
    key's and its sentence's tokens rank in the top 1–5 % of keys by this score in the lower layers (measured).
    The layers above often need the same tokens without attending to them locally, so the score is shared
    down the model: a key's score is the largest of its own and that of the same token in every layer below
    (``ImportanceBoard``, per forward call). A cached key keeps its score.
  - ``"recall"`` — LoLA's self-recall error against the state before the block, ``S = S(P)``::

        [n_x, d_x] = S^T φ_k(k_x)          r_x = n_x / d_x  (0 when d_x = 0)          e_x = ‖v_x - r_x‖²

    recomputed for every candidate at every departure (the best-recalled are evicted).
  - ``"prompt"`` — chosen by the question. Neither score above can know which old token a later question will
    ask for, and a small model's upper layers rarely attend to a fact while it is local (measured on SmolLM2:
    both keep filler). A prompt usually ends with its question, so in a prefill call (more than one token) the
    call's last ``n = min(OBSERVED, T)`` queries rank every candidate — the call's real non-sink keys and the
    held cache — by the attention they give it (SnapKV's observation window, Li et al. 2024)::

        c_x = K · mean_{t ∈ last n real queries, heads of the group} softmax_{s ≤ t}(s_ts)[x]

    (``K`` = the number of candidates the latest of them sees, so 1 is a uniform share), then
    ``score_x = max_{|y - x| ≤ POOL // 2} c_y``: a fact's neighbouring tokens (the other digits of a key, the
    rest of its sentence) are kept with it. The departures of that call rank by ``score``; one-token calls
    (decode) rank the keys that leave the window by ``"attention"``, except keys a prompt call scored (those
    still in its window when it ended: the end of a document, just before its question), which keep that
    score; a cached pair keeps the score it entered with. So, unlike the two streaming scores, the cache a
    prefill call builds depends on where the call ends: its earlier queries read pairs chosen with the question
    in view (none later than themselves), and a prompt prefilled in one call is not the same as the same tokens
    decoded one by one.

  Every candidate not kept enters the state with the decay it would have had there since its own position::

      S(P + C) = diag(Π_{r∈B} a_r) S(P) + Σ_{x evicted} (Π_{r=x+1..P+C-1} a_r ⊙ φ_k(k_x)) [v_x, 1]^T

  so the state always equals the plain hybrid's state minus the keys held exactly (cache and sinks): the
  three memories partition the keys older than the window. Sink and padded keys never enter either
  (``a = 1``, no contribution), exactly as in ``hybrid.py``.
- **Read.** Query ``t`` (query head ``h``) reads the window keys, the sinks older than ``P(t)`` and the
  cache ``G(P(t))`` by softmax, and the state by its feature map, in one shared normaliser::

      y_t = (Σ_exact e^{s_ts} v_s + e^{β_h} N_t) / (Σ_exact e^{s_ts} + e^{β_h} D_t),   [N_t, D_t] = S(P(t))^T φ_q(q_t)

  (``s_ts = q_t·k_s/√d``; ``p_ts = e^{s_ts} / denominator``); with the liquid read switched off
  (``mode="window"``) the ``e^{β}`` terms drop.

The state update of a departure runs through ``liquid_scan`` (the licensed kernels, or the reference
backend when chosen): one step decays the state by the block, the following add the evicted keys. Decode and
prefill run the same departures on the same blocks, so they agree to rounding (tested against a float64
recomputation of the formulas above; for ``"prompt"``, given where each call ends). The decode state holds at
most ``W + C - 1`` window keys (with the attention each received so far), ``N`` slots (key, value, decay since
its position, position, score) and the state: its size never depends on the context. With the liquid read off
(``mode="window"``) a cache that has no state keeps none: no state, no decays (``three_memories.forward_blocks``),
the slots hold key, value, position and score only — the exact read is the same, the evicted pairs are dropped.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from liquid_memory.hf.hybrid import TINY, pad_values
from liquid_memory.ops.dispatch import liquid_scan

DEFAULT_BLOCK = 64  # departure granularity C: one selection per C tokens (window = W … W + C - 1 keys)
SCORES = ("attention", "recall", "prompt")
OBSERVED = 32  # "prompt" score: the last queries of a prefill call that choose the cache
POOL = 7  # "prompt" score: a key's score is the largest within ±3 positions (keeps a fact's neighbouring tokens)


@dataclass
class Slots:
    """The global cache of one layer: ``N`` slots per batch row and KV head (``ok`` False = empty slot)."""

    keys: Tensor  # [B, Hkv, N, d] after RoPE
    values: Tensor  # [B, Hkv, N, d]
    log_decay: Tensor  # [B, Hkv, N, D]: Σ log a from the key's position to the state's current end (D = 0: no state)
    positions: Tensor  # [B, Hkv, N] absolute position (-1 when empty)
    ok: Tensor  # [B, Hkv, N] bool
    score: Tensor  # [B, Hkv, N] the "attention" score the pair entered with

    @classmethod
    def empty(cls, like_k: Tensor, n: int, feature_dim: int, acc: torch.dtype) -> Slots:
        b, hkv, _, d = like_k.shape
        z = like_k.new_zeros((b, hkv, n, d), dtype=acc)
        return cls(z, z.clone(), like_k.new_zeros((b, hkv, n, feature_dim), dtype=acc),
                   torch.full((b, hkv, n), -1, dtype=torch.long, device=like_k.device),
                   torch.zeros((b, hkv, n), dtype=torch.bool, device=like_k.device),
                   like_k.new_zeros((b, hkv, n), dtype=acc))  # fmt: skip

    def tensors(self) -> tuple[Tensor, ...]:
        return self.keys, self.values, self.log_decay, self.positions, self.ok, self.score

    def nbytes(self) -> int:
        return sum(t.numel() * t.element_size() for t in self.tensors())

    def detached(self) -> Slots:
        return Slots(*(t.detach() for t in self.tensors()))


class ImportanceBoard:
    """The largest "attention" score each departed token reached in the layers so far, for one forward call.

    Shared by every patched layer of a model: the first decoder layer starts it (``start``) for the call's key
    positions; each layer raises it at its departures and reads it for the tokens it ranks. A layer called
    outside a model forward (or with other shapes) finds it not started for its keys and uses its own scores."""

    def __init__(self) -> None:
        self.values: Tensor | None = None  # [B, L] over the call's keys
        self.base = -1

    def start(self, batch: int, base: int, length: int, like: Tensor) -> None:
        self.values, self.base = like.new_zeros((batch, length)), base

    def covers(self, batch: int, base: int, length: int) -> bool:
        return self.values is not None and self.base == base and tuple(self.values.shape) == (batch, length)


def boundary(t: Tensor | int, window: int, block: int, origin: Tensor | int = 0) -> Tensor | int:
    """``P(t)``: the first window key of query ``t`` for a row whose first real key is ``origin`` (absolute)."""
    if isinstance(t, int) and isinstance(origin, int):
        return origin + block * (max(t - origin - window + 1, 0) // block)
    return origin + block * torch.div((t - origin - window + 1).clamp_min(0), block, rounding_mode="floor")


def prompt_scores(q: Tensor, qpos: Tensor, qvalid: Tensor, keys: Tensor, kpos: Tensor, kvalid: Tensor,
                  slots: Slots, scaling: float, pool: int = POOL) -> tuple[Tensor, Tensor]:  # fmt: skip
    """The ``"prompt"`` score of a prefill call's keys and of the held cache: ``([B, Hkv, L], [B, Hkv, N])``.

    ``q`` ``[B, H, n, d]``: the call's last ``n`` queries (absolute positions ``qpos``, ``qvalid`` ``[B, n]`` real
    ones); ``keys`` ``[B, Hkv, L, d]`` at ``kpos`` with ``kvalid`` ``[B, L]`` (the candidates: real non-sink
    keys). Each query's softmax over every candidate it may see (the call's keys up to its position and the
    cache), averaged over the queries and the ``G`` heads of the group, times the number of candidates (1 = a
    uniform share), then max-pooled over ``pool`` neighbouring key positions."""
    b, h, n, d = q.shape
    hkv = keys.shape[1]
    qg = q.view(b, hkv, h // hkv, n, d)
    s_keys = torch.einsum("bkgtd,bksd->bkgts", qg, keys) * scaling
    s_keys = s_keys.masked_fill(~((kpos[None, :] <= qpos[:, None])[None, None, None] & kvalid[:, None, None, None]),
                                float("-inf"))  # fmt: skip
    s_slots = torch.einsum("bkgtd,bkmd->bkgtm", qg, slots.keys.to(q.dtype)) * scaling
    s_slots = s_slots.masked_fill(~slots.ok[:, :, None, None, :], float("-inf"))
    scores = torch.cat([s_keys, s_slots], -1)
    m = scores.amax(-1, keepdim=True)
    p = torch.exp(scores - torch.where(torch.isfinite(m), m, torch.zeros_like(m)))
    p = p / p.sum(-1, keepdim=True).clamp_min(TINY)
    weight = qvalid[:, None, None, :, None].to(p.dtype)
    mean = (p * weight).sum((2, 3)) / (weight.sum((2, 3)) * qg.shape[2]).clamp_min(1.0)
    count = torch.isfinite(scores).any(3).sum(-1, keepdim=True).amax(2)  # candidates the queries see
    mean = mean * count.to(mean.dtype)
    length = keys.shape[2]
    on_keys = mean[..., :length]
    if pool > 1:
        on_keys = torch.nn.functional.max_pool1d(on_keys.reshape(b * hkv, 1, length), pool, 1, pool // 2)
        on_keys = on_keys.view(b, hkv, length) * kvalid[:, None, :]
    return on_keys, mean[..., length:]


def recall_error(phi_k: Tensor, values: Tensor, state: Tensor) -> Tensor:
    """``‖v - S^T φ_k(k) normalised‖²`` per candidate: ``phi_k`` ``[B, Hkv, M, D]``, ``values`` ``[B, Hkv, M, d]``."""
    d = values.shape[-1]
    read = torch.einsum("bkmD,bkDE->bkmE", phi_k.to(state.dtype), state)
    num, den = read[..., :d], read[..., d]
    recalled = torch.where((den > TINY).unsqueeze(-1), num / den.clamp_min(TINY).unsqueeze(-1), 0.0)
    return (values.to(state.dtype) - recalled).pow(2).sum(-1)


def depart(state: Tensor | None, slots: Slots, block: tuple[Tensor, ...], feature_k, backend: str | None,
           score: str = "attention") -> tuple[Tensor | None, Slots]:  # fmt: skip
    """One block leaves the window: select the cache among (cache ∪ block), the rest enters the state (or, with
    no state — ``None``, the exact memories only — is dropped; the decays then have width 0).

    ``block``: ``(keys [B,Hkv,C,d], values, log_a [B,Hkv,C,D], positions [B,C], ok [B,Hkv,C], attention
    [B,Hkv,C])`` with ``log_a = 0`` at padded and sink keys and in rows that do not depart now (``ok`` False
    there: their cache and state stay as they are). ``feature_k`` maps keys ``[B,Hkv,M,d]`` to ``[B,Hkv,M,D]``."""
    bk, bv, blog_a, bpos, bok, battn = block
    n = slots.keys.shape[2]
    acc = slots.keys.dtype
    b, hkv, c, d = bk.shape
    keys = torch.cat([slots.keys, bk.to(acc)], 2)
    values = torch.cat([slots.values, bv.to(acc)], 2)
    ok = torch.cat([slots.ok, bok], 2)
    positions = torch.cat([slots.positions, bpos[:, None].expand(b, hkv, c)], 2)
    attention = torch.cat([slots.score, battn.to(acc)], 2)
    total = blog_a.sum(2, keepdim=True)  # [B, Hkv, 1, D]: the block's decay
    suffix = total - blog_a.cumsum(2)  # Σ_{r=x+1..end} log a_r for the block's own keys
    log_decay = torch.cat([slots.log_decay + total, suffix], 2)
    if score == "recall" and state is None:
        raise ValueError("the recall score ranks by the state: it needs one")
    phi = feature_k(keys) if state is not None else None
    rank = attention if score == "attention" else recall_error(phi, values, state)
    rank = rank.masked_fill(~ok, float("-inf"))
    kept = _top(rank, n)
    new_state = None if state is None else _enter_state(state, keys, values, ok, kept, log_decay, total, phi, backend)

    def pick(x: Tensor) -> Tensor:
        index = kept.view(*kept.shape, *([1] * (x.dim() - 3))).expand(*kept.shape, *x.shape[3:])
        return x.gather(2, index)

    new = Slots(pick(keys), pick(values), pick(log_decay), pick(positions), pick(ok), pick(attention))
    return new_state, new


def _enter_state(state: Tensor, keys: Tensor, values: Tensor, ok: Tensor, kept: Tensor, log_decay: Tensor,
                 total: Tensor, phi: Tensor, backend: str | None) -> Tensor:  # fmt: skip
    """The state after a departure: decayed by the block, plus every valid candidate not ``kept``, each with the
    decay since its own position — as a scan whose step 0 decays the state (and adds candidate 0)."""
    keep = torch.zeros_like(ok).scatter_(2, kept, True)
    evict = ok & ~keep
    weight = torch.where(evict.unsqueeze(-1), torch.exp(log_decay), 0.0)
    step_log_a = torch.zeros_like(phi)
    step_log_a[:, :, :1] = total
    zeros = torch.zeros_like(phi)
    _, new_state = liquid_scan(zeros, weight * phi, pad_values(values, phi.shape[-1]) * evict.unsqueeze(-1),
                               step_log_a, initial_state=state, output_final_state=True, backend=backend)  # fmt: skip
    return new_state


def _top(rank: Tensor, n: int) -> Tensor:
    """Indices of the ``n`` highest entries of each row in candidate order (ties: the earlier candidate)."""
    return torch.sort(rank, dim=-1, descending=True, stable=True).indices[..., :n].sort(dim=-1).values
