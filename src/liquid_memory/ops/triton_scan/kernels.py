"""Triton kernels for ``liquid_scan``: chunk-local cumsum, chunked forward, chunked backward, d(log_a), decode.

One program per (batch, head, block of value columns). Time is cut into chunks of ``BT`` tokens and each
chunk into sub-blocks of ``BC`` tokens (fla ``chunk_gla``'s secondary chunking). ``g`` is the cumulative
log-decay inside a chunk (fp32, non-increasing), and every exponent evaluated is ≤ 0:

* inter-chunk read-out ``exp(g_t)``; chunk contribution to the state ``exp(g_last - g_s)``;
* off-diagonal sub-blocks (i > j) factor through ``r`` = ``g`` on the row just before sub-block ``i``:
  ``exp(g_t - r)`` and ``exp(r - g_s)``;
* diagonal sub-blocks evaluate ``exp(g_t - g_s)`` one row at a time (as fla does, so every tile stays
  2-D and fits registers) with ``s > t`` masked to ``-inf`` *before* the exponential.

The d×d state is carried in fp32 registers across chunks (with a Kahan compensation term when
``SAFE``). fp32 dot products use ``input_precision="ieee"`` so a GPU does not silently fall back to TF32.
Rows past ``T`` are masked (loaded as zero); ``g`` lives in a buffer padded to whole chunks whose padded
rows repeat the last real value (their log-decay is 0), so ``g_last`` is always the chunk's last row.
"""

from __future__ import annotations

import triton
import triton.language as tl


@triton.jit
def _load_rows(ptr, rows, cols, T, C: tl.constexpr):
    """Load a [rows, cols] tile of a row-major [T, C] matrix as fp32; rows ≥ T and cols ≥ C read 0."""
    mask = (rows[:, None] < T) & (cols[None, :] < C)
    return tl.load(ptr + rows[:, None] * C + cols[None, :], mask=mask, other=0.0).to(tl.float32)


@triton.jit
def _load_row(ptr, row, cols, T, C: tl.constexpr):
    """Load row ``row`` of a row-major [T, C] matrix as fp32 (zeros past ``T`` or ``C``)."""
    rows = row + tl.zeros_like(cols)  # a tensor, so the mask is one even when ``row`` is a plain int
    return tl.load(ptr + rows * C + cols, mask=(cols < C) & (rows < T), other=0.0).to(tl.float32)


@triton.jit
def _masked_decay(g_late, g_early, keep):
    """``exp(g_late - g_early)`` where ``keep`` (there the exponent is ≤ 0), 0 elsewhere; masked *before* exp."""
    return tl.exp(tl.where(keep, g_late - g_early, float("-inf")))


@triton.jit
def chunk_cumsum_kernel(la, g, T, NT, K: tl.constexpr, BT: tl.constexpr, BK: tl.constexpr):
    """``g[t] = Σ_{s in chunk, s ≤ t} log_a[s]`` into a buffer padded to ``NT * BT`` rows. Grid (B*H, NT)."""
    bh, n = tl.program_id(0), tl.program_id(1)
    rows = n * BT + tl.arange(0, BT)
    cols = tl.arange(0, BK)
    x = _load_rows(la + bh * T * K, rows, cols, T, K)
    out = tl.cumsum(x, axis=0)
    tl.store(g + bh * NT * BT * K + rows[:, None] * K + cols[None, :], out, mask=cols[None, :] < K)


@triton.jit
def chunk_fwd_kernel(
    q, k, v, g, h0, o, hs, ht, T, NT,
    K: tl.constexpr, V: tl.constexpr, BT: tl.constexpr, BC: tl.constexpr, BK: tl.constexpr, BV: tl.constexpr,
    HAS_H0: tl.constexpr, STORE_HS: tl.constexpr, SAFE: tl.constexpr,
):  # fmt: skip
    """Outputs ``o`` (input dtype), the state entering each chunk ``hs`` (if ``STORE_HS``) and the final ``ht``.

    Grid (B*H, cdiv(V, BV)): value columns are independent, so each program owns ``BV`` of them.
    """
    bh, iv = tl.program_id(0), tl.program_id(1)
    NC: tl.constexpr = BT // BC
    ck, cv, oc = tl.arange(0, BK), iv * BV + tl.arange(0, BV), tl.arange(0, BC)
    mk = ck < K
    mkv = mk[:, None] & (cv[None, :] < V)
    kv_off = ck[:, None] * V + cv[None, :]
    q, k, g = q + bh * T * K, k + bh * T * K, g + bh * NT * BT * K
    v, o = v + bh * T * V, o + bh * T * V

    h = tl.zeros((BK, BV), dtype=tl.float32)
    comp = tl.zeros((BK, BV), dtype=tl.float32)
    if HAS_H0:
        h = tl.load(h0 + bh * K * V + kv_off, mask=mkv, other=0.0).to(tl.float32)
    for n in range(NT):
        t0 = n * BT
        h_in = h + comp
        if STORE_HS:
            tl.store(hs + (bh * NT + n) * K * V + kv_off, h_in, mask=mkv)
        for i in range(NC):
            ti = t0 + i * BC + oc
            q_i = _load_rows(q, ti, ck, T, K)
            g_i = _load_rows(g, ti, ck, NT * BT, K)
            acc = tl.dot(q_i * tl.exp(g_i), h_in, input_precision="ieee")
            r = tl.load(g + (t0 + i * BC - 1) * K + ck, mask=mk & (i > 0), other=0.0)
            q_s = q_i * tl.exp(g_i - r[None, :])
            for j in range(i):  # off-diagonal sub-blocks (none for i = 0)
                tj = t0 + j * BC + oc
                k_s = _load_rows(k, tj, ck, T, K) * tl.exp(r[None, :] - _load_rows(g, tj, ck, NT * BT, K))
                a = tl.dot(q_s, tl.trans(k_s), input_precision="ieee")
                acc += tl.dot(a, _load_rows(v, tj, cv, T, V), input_precision="ieee")
            for jj in range(BC):  # diagonal sub-block, one key row at a time (2-D tiles only)
                row = t0 + i * BC + jj
                e = _masked_decay(g_i, _load_row(g, row, ck, NT * BT, K)[None, :], oc[:, None] >= jj)
                a_col = tl.sum(q_i * _load_row(k, row, ck, T, K)[None, :] * e, axis=1)
                acc += a_col[:, None] * _load_row(v, row, cv, T, V)[None, :]
            o_mask = (ti[:, None] < T) & (cv[None, :] < V)
            tl.store(o + ti[:, None] * V + cv[None, :], acc.to(o.dtype.element_ty), mask=o_mask)

        g_last = tl.load(g + (t0 + BT - 1) * K + ck, mask=mk, other=0.0)
        u = tl.zeros((BK, BV), dtype=tl.float32)
        for j in range(NC):
            tj = t0 + j * BC + oc
            k_s = _load_rows(k, tj, ck, T, K) * tl.exp(g_last[None, :] - _load_rows(g, tj, ck, NT * BT, K))
            u += tl.dot(tl.trans(k_s), _load_rows(v, tj, cv, T, V), input_precision="ieee")
        decayed = tl.exp(g_last)[:, None] * h
        if SAFE:  # Kahan (Fast2Sum) step: the state's rounding error stays O(eps) over many chunks
            addend = tl.exp(g_last)[:, None] * comp + u
            h = decayed + addend
            comp = (decayed - h) + addend
        else:
            h = decayed + u
    tl.store(ht + bh * K * V + kv_off, h + comp, mask=mkv)


@triton.jit
def chunk_bwd_kernel(
    q, k, v, g, hs, do, dht, dq, dk, dv, dh0, T, NT,
    K: tl.constexpr, V: tl.constexpr, BT: tl.constexpr, BC: tl.constexpr, BK: tl.constexpr, BV: tl.constexpr,
    HAS_DHT: tl.constexpr, SAFE: tl.constexpr,
):  # fmt: skip
    """Reverse-time chunk loop carrying ``dH`` (the gradient of the state at the end of the chunk).

    ``dq_t = S_t do_t``; ``dk_s = dS_s v_s``; ``dv_s = dS_s^T k_s`` with ``dS_s = Σ_{t≥s} decay ⊙ q_t do_t^T``.
    Grid (B*H, NV = cdiv(V, BV)): writes fp32 ``dv`` and ``dh0`` (gradient of the initial state) for its
    value columns, and this block's partial sums of ``dq, dk`` (``[NV, B*H, T, K]``, summed by the caller).
    """
    bh, iv = tl.program_id(0), tl.program_id(1)
    NC: tl.constexpr = BT // BC
    TP = NT * BT
    ck, cv, oc = tl.arange(0, BK), iv * BV + tl.arange(0, BV), tl.arange(0, BC)
    mk = ck < K
    mkv = mk[:, None] & (cv[None, :] < V)
    kv_off = ck[:, None] * V + cv[None, :]
    part = (iv * tl.num_programs(0) + bh) * T * K
    q, k, g, dq, dk = q + bh * T * K, k + bh * T * K, g + bh * TP * K, dq + part, dk + part
    v, do, dv = v + bh * T * V, do + bh * T * V, dv + bh * T * V

    dh = tl.zeros((BK, BV), dtype=tl.float32)
    comp = tl.zeros((BK, BV), dtype=tl.float32)
    if HAS_DHT:
        dh = tl.load(dht + bh * K * V + kv_off, mask=mkv, other=0.0).to(tl.float32)
    for m in range(NT):
        n = NT - 1 - m
        t0 = n * BT
        h_in = tl.load(hs + (bh * NT + n) * K * V + kv_off, mask=mkv, other=0.0)
        g_last = tl.load(g + (t0 + BT - 1) * K + ck, mask=mk, other=0.0)
        dh_end = dh + comp
        # dq: queries of sub-block i against the entering state and keys of sub-blocks j ≤ i
        for i in range(NC):
            ti = t0 + i * BC + oc
            do_i = _load_rows(do, ti, cv, T, V)
            g_i = _load_rows(g, ti, ck, TP, K)
            acc = tl.dot(do_i, tl.trans(h_in), input_precision="ieee") * tl.exp(g_i)
            r = tl.load(g + (t0 + i * BC - 1) * K + ck, mask=mk & (i > 0), other=0.0)
            inner = tl.zeros((BC, BK), dtype=tl.float32)
            for j in range(i):  # off-diagonal sub-blocks (none for i = 0)
                tj = t0 + j * BC + oc
                b = tl.dot(do_i, tl.trans(_load_rows(v, tj, cv, T, V)), input_precision="ieee")
                k_s = _load_rows(k, tj, ck, T, K) * tl.exp(r[None, :] - _load_rows(g, tj, ck, TP, K))
                inner += tl.dot(b, k_s, input_precision="ieee")
            acc += inner * tl.exp(g_i - r[None, :])
            for jj in range(BC):  # diagonal sub-block, one key row at a time
                row = t0 + i * BC + jj
                e = _masked_decay(g_i, _load_row(g, row, ck, TP, K)[None, :], oc[:, None] >= jj)
                b_col = tl.sum(do_i * _load_row(v, row, cv, T, V)[None, :], axis=1)
                acc += b_col[:, None] * _load_row(k, row, ck, T, K)[None, :] * e
            tl.store(dq + ti[:, None] * K + ck[None, :], acc, mask=(ti[:, None] < T) & mk[None, :])
        # dk, dv: keys/values of sub-block j against dH and the queries of sub-blocks i ≥ j
        for j in range(NC):
            tj = t0 + j * BC + oc
            k_j, v_j = _load_rows(k, tj, ck, T, K), _load_rows(v, tj, cv, T, V)
            g_j = _load_rows(g, tj, ck, TP, K)
            to_end = tl.exp(g_last[None, :] - g_j)
            dk_acc = tl.dot(v_j, tl.trans(dh_end), input_precision="ieee") * to_end
            dv_acc = tl.dot(k_j * to_end, dh_end, input_precision="ieee")
            for tt in range(BC):  # diagonal sub-block, one query row t at a time: keys s ≤ t
                row = t0 + j * BC + tt
                q_r, do_r = _load_row(q, row, ck, T, K), _load_row(do, row, cv, T, V)
                e = _masked_decay(_load_row(g, row, ck, TP, K)[None, :], g_j, oc[:, None] <= tt)
                b_row = tl.sum(v_j * do_r[None, :], axis=1)  # b[t, s] = do_t · v_s
                dk_acc += b_row[:, None] * q_r[None, :] * e
                a_row = tl.sum(q_r[None, :] * k_j * e, axis=1)  # a[t, s] = forward score
                dv_acc += a_row[:, None] * do_r[None, :]
            for i in range(j + 1, NC):
                ti = t0 + i * BC + oc
                r = tl.load(g + (t0 + i * BC - 1) * K + ck, mask=mk, other=0.0)
                do_i = _load_rows(do, ti, cv, T, V)
                q_s = _load_rows(q, ti, ck, T, K) * tl.exp(_load_rows(g, ti, ck, TP, K) - r[None, :])
                k_decay = tl.exp(r[None, :] - g_j)
                b = tl.dot(do_i, tl.trans(v_j), input_precision="ieee")
                dk_acc += tl.dot(tl.trans(b), q_s, input_precision="ieee") * k_decay
                a = tl.dot(q_s, tl.trans(k_j * k_decay), input_precision="ieee")
                dv_acc += tl.dot(tl.trans(a), do_i, input_precision="ieee")
            tl.store(dk + tj[:, None] * K + ck[None, :], dk_acc, mask=(tj[:, None] < T) & mk[None, :])
            tl.store(dv + tj[:, None] * V + cv[None, :], dv_acc, mask=(tj[:, None] < T) & (cv[None, :] < V))
        # dH for the end of the previous chunk
        u = tl.zeros((BK, BV), dtype=tl.float32)
        for i in range(NC):
            ti = t0 + i * BC + oc
            q_s = _load_rows(q, ti, ck, T, K) * tl.exp(_load_rows(g, ti, ck, TP, K))
            u += tl.dot(tl.trans(q_s), _load_rows(do, ti, cv, T, V), input_precision="ieee")
        decayed = tl.exp(g_last)[:, None] * dh
        if SAFE:
            addend = tl.exp(g_last)[:, None] * comp + u
            dh = decayed + addend
            comp = (decayed - dh) + addend
        else:
            dh = decayed + u
    tl.store(dh0 + bh * K * V + kv_off, dh + comp, mask=mkv)


@triton.jit
def dlog_a_kernel(
    q, k, dq, dk, ht, dht, dla, T, NT,
    K: tl.constexpr, V: tl.constexpr, BT: tl.constexpr, BK: tl.constexpr, BV: tl.constexpr,
    HAS_DHT: tl.constexpr,
):  # fmt: skip
    """``d log_a_r = Σ_{t ≥ r} (q_t ⊙ dq_t − k_t ⊙ dk_t)`` plus, at ``t = T-1``, ``Σ_e S_T ⊙ dS_T``.

    (``log_a`` enters only through the global cumulative log-decay ``G``: a query at ``t`` carries
    ``+G_t``, a key at ``s`` carries ``−G_s``, the final state carries ``+G_T``.) Reverse scan over chunks.
    """
    bh = tl.program_id(0)
    ck = tl.arange(0, BK)
    q, k, dq, dk, dla = q + bh * T * K, k + bh * T * K, dq + bh * T * K, dk + bh * T * K, dla + bh * T * K
    final_term = tl.zeros((BK,), dtype=tl.float32)
    if HAS_DHT:
        for c0 in range(0, V, BV):
            cv = c0 + tl.arange(0, BV)
            off = bh * K * V + ck[:, None] * V + cv[None, :]
            mkv = (ck[:, None] < K) & (cv[None, :] < V)
            s_t = tl.load(ht + off, mask=mkv, other=0.0)
            ds_t = tl.load(dht + off, mask=mkv, other=0.0).to(tl.float32)
            final_term += tl.sum(s_t * ds_t, axis=1)
    carry = tl.zeros((BK,), dtype=tl.float32)
    for m in range(NT):
        rows = (NT - 1 - m) * BT + tl.arange(0, BT)
        dg = _load_rows(q, rows, ck, T, K) * _load_rows(dq, rows, ck, T, K)
        dg -= _load_rows(k, rows, ck, T, K) * _load_rows(dk, rows, ck, T, K)
        dg += tl.where(rows[:, None] == T - 1, final_term[None, :], 0.0)
        out = tl.cumsum(dg, axis=0, reverse=True) + carry[None, :]
        tl.store(dla + rows[:, None] * K + ck[None, :], out, mask=(rows[:, None] < T) & (ck[None, :] < K))
        carry += tl.sum(dg, axis=0)


@triton.jit
def step_kernel(
    q, k, v, la, s, o, s_out, K: tl.constexpr, V: tl.constexpr, BK: tl.constexpr, BV: tl.constexpr
):  # fmt: skip
    """One decode token: ``S ← diag(exp(log_a)) S + k v^T``; ``o = S^T q``. Grid (B*H, cdiv(V, BV))."""
    bh, iv = tl.program_id(0), tl.program_id(1)
    ck, cv = tl.arange(0, BK), iv * BV + tl.arange(0, BV)
    mk, mv = ck < K, cv < V
    mkv = mk[:, None] & mv[None, :]
    off = bh * K * V + ck[:, None] * V + cv[None, :]
    q_t = tl.load(q + bh * K + ck, mask=mk, other=0.0).to(tl.float32)
    k_t = tl.load(k + bh * K + ck, mask=mk, other=0.0).to(tl.float32)
    la_t = tl.load(la + bh * K + ck, mask=mk, other=0.0).to(tl.float32)
    v_t = tl.load(v + bh * V + cv, mask=mv, other=0.0).to(tl.float32)
    state = tl.load(s + off, mask=mkv, other=0.0).to(tl.float32)
    state = tl.exp(la_t)[:, None] * state + k_t[:, None] * v_t[None, :]
    tl.store(s_out + off, state, mask=mkv)
    o_t = tl.sum(q_t[:, None] * state, axis=0)
    tl.store(o + bh * V + cv, o_t.to(o.dtype.element_ty), mask=mv)
