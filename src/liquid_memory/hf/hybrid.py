"""The hybrid mixer's math: exact softmax over the last ``window`` keys + the liquid recurrence for older keys.

For query ``t`` (RoPE already applied to ``q``, ``k``; GQA: query head ``h`` reads KV head ``h // G``;
``σ`` = the sink keys, the first ``n_sink`` non-padded keys of the sequence, ``sinks.py``)::

    s_ts  = q_t · k_s / sqrt(d)                                   exact keys   t-W < s ≤ t, or s ∈ σ (s ≤ t)
    w_ts  = φ_q(q_t) · ( Π_{r=s+1..t-W, r∉σ} a_r  ⊙  φ_k(k_s) )    older keys   s ≤ t-W, s ∉ σ  (the recurrence)
    y_t   = ( Σ_exact e^{s_ts} v_s + e^{β_h} Σ_old w_ts v_s ) / ( Σ_exact e^{s_ts} + e^{β_h} Σ_old w_ts )

one normaliser shared by both parts (as LoLCATs combines its sliding window with linear attention), with a
learned per-head log-scale ``β_h`` that puts the liquid mass on the softmax mass's scale. The older part is
the liquid recurrence (docs/architecture.md §2) read with a delay of ``W`` tokens:
``S_j = diag(a_j) S_{j-1} + φ_k(k_j) [v_j, 1]^T``
and ``Σ_old w_ts [v_s, 1] = S_{t-W}^T φ_q(q_t)`` — the appended 1 carries the normaliser, so one
``liquid_scan`` gives numerator and denominator. ``W = 0`` (pure liquid): ``y_t = N_t / D_t`` with
``[N_t, D_t] = S_t^T φ_q(q_t)`` (the state includes token t; β cancels). ``W = 0`` with sinks: the same
formula for ``y_t`` with the sink keys as the only exact keys and every other key ``s ≤ t`` in the
recurrence (``w_ts = φ_q(q_t) · (Π_{r=s+1..t, r∉σ} a_r ⊙ φ_k(k_s))``, read from ``S_t``); β no longer cancels.

Evaluated stably: with ``m_t = max_exact s_ts`` and ``c_t = max(m_t, β_h + ln D_t)`` every exponent is ≤ 0.
Padded keys contribute nothing (``φ_k = 0``, ``v = 0``, ``a = 1``); a query that sees no key returns 0. Sink
keys enter the recurrence exactly like padded ones (no contribution, no decay): they are exact keys instead.
With ``W = 0`` the exact part is the sinks alone (the state still has a constant size: ``n_sink`` keys).
The state is fp32 (float64 in float64 runs) and per KV head: the ``G`` query heads of a group read the
same state — the kernel reads one query per step, so the group's queries go in ``G`` sub-steps whose
key is zero and decay one (the state does not change between them).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from liquid_memory.hf.window_blocks import fused_window_part
from liquid_memory.ops.dispatch import grouped_scan_kernel, liquid_scan, liquid_step

# window part: queries per block (scores are [block, block + W - 1], not [T, T]); at window 64 a block of 64 left
# a third less of the score matrix than 128 (SmolLM2's shapes at 1K tokens, 1 thread: 12.3 vs 18.9 ms per layer)
QUERY_BLOCK = 64
TINY = 1e-30  # floor of the liquid denominator inside ln(): only rows with no older key ever reach it


def pad_values(v: Tensor, feature_dim: int) -> Tensor:
    """``[v, 1, 0…]`` of width ``feature_dim`` (the kernel needs dv == dk; the 1 carries the normaliser)."""
    pad = v.new_zeros((*v.shape[:-1], feature_dim - v.shape[-1]))
    pad[..., 0] = 1.0
    return torch.cat([v, pad], dim=-1)


def window_part(
    q: Tensor, k: Tensor, v: Tensor, valid: Tensor, n_cached: int, window: int, scaling: float,
    sinks: tuple[Tensor, Tensor, Tensor, Tensor] | None = None, *, force_reference: bool = False,
):  # fmt: skip
    """Unnormalised softmax over the window (and sinks): ``(A = Σ e^{s-m} v, Z = Σ e^{s-m}, m)``, query blocks.

    Inference in fp32 on a CPU with a window (``force_reference=False``): every block in one fused attention call
    (``window_blocks.py``), ``m`` the rows' log-sum-exp (so ``Z = 1``: the same triple with another shift);
    otherwise, and as its reference, a loop over the blocks: scores, their maximum and the two sums op by op.

    ``q``: ``[B, H, T, d]`` new queries at positions ``n_cached + i`` of the key sequence ``k, v``
    (``[B, Hkv, L, d]``); ``valid``: ``[B, L]`` bool. ``sinks``: ``(keys, values, positions, ok)`` as
    ``sinks.gather_sinks`` makes them (positions in ``k``'s coordinates); a sink joins every query for which
    it is older than the window. ``m = -inf`` and ``A = Z = 0`` where no key is visible.
    """
    b, h, t, d = q.shape
    hkv = k.shape[1]
    g = h // hkv
    inplace = not (torch.is_grad_enabled() and any(x.requires_grad for x in (q, k, v)))
    fused = inplace and q.dtype == torch.float32 and q.device.type == "cpu" and window > 0 and not force_reference
    if fused and not torch.compiler.is_compiling():
        return fused_window_part(q, k, v, valid, n_cached, window, scaling, sinks, QUERY_BLOCK)
    qg = (q * scaling).contiguous().view(b, hkv, g, t, d)  # a block of a group's queries: rows of one matrix
    a_out, z_out, m_out = [], [], []
    for i0, i1, rows, keys, vals, allowed in _blocks(qg, k, v, valid, n_cached, window, sinks):
        # one [G·block, keys] score matrix per KV head; without autograd softmax'd in place (fewer allocations)
        scores = torch.matmul(rows, keys.transpose(-1, -2)).view(b, hkv, g, i1 - i0, -1)
        scores = scores.masked_fill_(~allowed, float("-inf")) if inplace else scores.masked_fill(~allowed, -math.inf)
        m = scores.amax(dim=-1, keepdim=True)
        shift = torch.where(torch.isfinite(m), m, torch.zeros_like(m))
        e = scores.sub_(shift).exp_() if inplace else torch.exp(scores - shift)
        a_out.append(torch.matmul(e.view(b, hkv, g * (i1 - i0), -1), vals).view(b, hkv, g, i1 - i0, d))
        z_out.append(e.sum(-1))
        m_out.append(m.squeeze(-1))
    return (
        torch.cat(a_out, 3).reshape(b, h, t, d),
        torch.cat(z_out, 3).reshape(b, h, t),
        torch.cat(m_out, 3).reshape(b, h, t),
    )


def _blocks(qg: Tensor, k: Tensor, v: Tensor, valid: Tensor, n_cached: int, window: int, sinks):
    """Per query block: ``(i0, i1, rows [B, Hkv, G·n, d], keys, values, allowed [B|1, 1, 1, n, keys])``."""
    b, hkv, g, t, d = qg.shape
    for i0 in range(0, t, QUERY_BLOCK):
        i1 = min(t, i0 + QUERY_BLOCK)
        j1 = n_cached + i1
        j0 = max(0, n_cached + i0 - window + 1) if window > 0 else j1  # window 0: sink keys only
        rows = qg[:, :, :, i0:i1].reshape(b, hkv, g * (i1 - i0), d)
        keys, vals = k[:, :, j0:j1], v[:, :, j0:j1]
        qpos = torch.arange(n_cached + i0, n_cached + i1, device=qg.device)[:, None]
        kpos = torch.arange(j0, j1, device=qg.device)[None, :]
        allowed = (kpos <= qpos) & (kpos > qpos - window) & valid[:, None, None, None, j0:j1]
        if sinks is not None:  # exact sink keys older than the window (younger ones are window keys above)
            sk, sv, spos, sok = sinks
            s_allowed = sok[:, None, None, None, :] & (spos[:, None, None, None, :] <= qpos - window)
            keys, vals = torch.cat([keys, sk], 2), torch.cat([vals, sv], 2)
            allowed = torch.cat([allowed.expand(b, 1, 1, i1 - i0, j1 - j0), s_allowed], -1)
        yield i0, i1, rows, keys, vals, allowed


def _grouped_scan(phi_q: Tensor, phi_k: Tensor, vp: Tensor, log_a: Tensor, state: Tensor | None, backend):
    """Scan with ``G`` query heads per KV head: ``phi_q`` ``[B, H, n, D]``, the rest ``[B, Hkv, n, D]``.

    Inference on the ``cpp`` backend: one op runs each KV head's recurrence once for its ``G`` queries
    (``grouped_scan_kernel``). Otherwise, and as that op's reference: each query head runs its KV head's recurrence
    (keys, values and decays repeated ``G`` times: the ``G`` copies of a state stay equal, the final state is read
    from the first); the same arithmetic as ``G`` sub-steps per token with zero key and unit decay, without their
    zero-filled buffers and transposes."""
    b, h, n, dim = phi_q.shape
    hkv = phi_k.shape[1]
    g = h // hkv
    if g == 1:
        return liquid_scan(phi_q, phi_k, vp, log_a, initial_state=state, output_final_state=True, backend=backend)
    kernel = grouped_scan_kernel(backend, device_type=phi_q.device.type)
    if kernel is not None and phi_q.dtype in (torch.float32, torch.bfloat16) and phi_k.dtype == phi_q.dtype:
        return kernel(phi_q, phi_k, vp, log_a, initial_state=state)  # each KV head's recurrence once

    def rep(x: Tensor | None) -> Tensor | None:
        return None if x is None else x.repeat_interleave(g, dim=1)

    o, final = liquid_scan(
        phi_q, rep(phi_k), rep(vp), rep(log_a), initial_state=rep(state), output_final_state=True, backend=backend
    )
    return o, final[:, ::g].contiguous()


def _read(phi_q: Tensor, state: Tensor) -> Tensor:
    """``S^T φ_q`` for every query head of each group: ``[B, H, T, D]`` against ``[B, Hkv, D, D]``."""
    b, h, t, dim = phi_q.shape
    hkv = state.shape[1]
    qg = phi_q.view(b, hkv, h // hkv, t, dim).to(state.dtype)
    return torch.einsum("bkgtd,bkde->bkgte", qg, state).reshape(b, h, t, dim)


def liquid_part(phi_q, phi_k, v, log_a, valid, n_cached, window, state, backend):
    """``(N·D-packed reads [B, H, T, D], new state [B, Hkv, D, D])``; keys ``0..L-W`` enter the state.

    ``phi_q``: new queries ``[B, H, T, D]``; ``phi_k``, ``v`` (``[B, Hkv, L, d]``), ``log_a`` cover the cached
    window keys followed by the new keys; ``state`` holds every key before them (``None`` = zeros).
    """
    b, h, t, dim = phi_q.shape
    hkv, length = phi_k.shape[1], phi_k.shape[2]
    vp = pad_values(v, dim)
    if torch.compiler.is_compiling() or not bool(valid.all()):  # eager without padding: nothing to zero
        keep = valid[:, None, :, None]
        phi_k, vp, log_a = torch.where(keep, phi_k, 0.0), torch.where(keep, vp, 0.0), torch.where(keep, log_a, 0.0)
    acc = torch.float64 if phi_q.dtype == torch.float64 else torch.float32
    if state is None:
        state = phi_q.new_zeros((b, hkv, dim, dim), dtype=acc)
    if window == 0:  # pure: query t reads S_t (its own key included); nothing stays outside the state
        if t == 1 and length == 1:
            _, new_state = liquid_step(
                phi_k.new_zeros(phi_k[:, :, 0].shape), phi_k[:, :, 0], vp[:, :, 0], log_a[:, :, 0], state,
                backend=backend,
            )  # fmt: skip
            return _read(phi_q, new_state), new_state
        return _grouped_scan(phi_q, phi_k, vp, log_a, state, backend)
    n_s = max(length - window + 1, 0)  # keys that leave the window for good
    i0 = max(window - n_cached, 0)  # new queries before i0 read the incoming state directly
    reads = [_read(phi_q[:, :, : min(i0, t)], state)] if i0 > 0 else []
    if n_s == 0:
        return torch.cat(reads, 2).to(phi_q.dtype), state
    if n_s == 1:  # decode: one key leaves the window; no query reads the state after it in this call
        _, new_state = liquid_step(
            phi_k.new_zeros(phi_k[:, :, 0].shape), phi_k[:, :, 0], vp[:, :, 0], log_a[:, :, 0], state,
            backend=backend,
        )  # fmt: skip
        return torch.cat(reads, 2).to(phi_q.dtype), new_state
    shifted = phi_q.new_zeros((b, h, n_s, dim))  # query at key position j reads S_{j-W}: run it at step j-W
    if i0 < t:
        shifted[:, :, n_cached + i0 - window : n_cached + t - window] = phi_q[:, :, i0:]
    o, new_state = _grouped_scan(shifted, phi_k[:, :, :n_s], vp[:, :, :n_s], log_a[:, :, :n_s], state, backend)
    if i0 < t:
        reads.append(o[:, :, n_cached + i0 - window : n_cached + t - window])
    return torch.cat(reads, 2).to(phi_q.dtype), new_state


def combine(
    win: tuple[Tensor, Tensor, Tensor] | None, lin: Tensor, mix_log_scale: Tensor, head_dim: int,
    exact_share: bool = False,
) -> Tensor | tuple[Tensor, Tensor]:  # fmt: skip
    """Shared-normaliser combination (module docstring); ``lin`` packs ``[N (d), D (1), 0…]`` per query;
    ``mix_log_scale``: β ``[H]``, or ``[B, H, T]`` (one per query). ``exact_share=True`` also returns, per
    query, the factor that turns the window part's ``e^{s - m}`` into attention probabilities."""
    num, den = lin[..., :head_dim], lin[..., head_dim].clamp_min(0.0)
    if win is None:
        return num / (den + TINY).unsqueeze(-1)
    a, z, m = win
    beta = mix_log_scale.view(1, -1, 1) if mix_log_scale.dim() == 1 else mix_log_scale  # per head or per query
    log_w = beta.to(den.dtype) + torch.log(den.clamp_min(TINY))
    c = torch.maximum(m, log_w)
    wa, wl = torch.exp(m - c), torch.exp(log_w - c)
    numer = wa.unsqueeze(-1) * a + (wl / den.clamp_min(TINY)).unsqueeze(-1) * num
    denom = (wa * z + wl).clamp_min(TINY)
    y = numer / denom.unsqueeze(-1)
    return (y, wa / denom) if exact_share else y
