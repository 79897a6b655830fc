"""Chunked-parallel ``liquid_scan`` in pure PyTorch: the portable fallback and the AOTInductor source.

The sequence is cut into chunks of ``chunk_size`` tokens. Inside a chunk everything is matrix
products over cumulative log-decays ``g`` (fp32); across chunks a d×d state is carried. Every
exponent evaluated is ≤ 0, so no decay, however strong, can overflow:

* inter-chunk read-out uses ``exp(g_t)`` (decay from the chunk start to ``t``);
* the chunk's contribution to the state uses ``exp(g_last - g_s)``;
* intra-chunk scores use fla ``chunk_gla``'s secondary chunking: sub-blocks of ``SUB_CHUNK`` tokens;
  an off-diagonal block (i, j<i) factors through the reference point ``r`` = ``g`` just before
  sub-block ``i`` (``exp(g_t - r)``, ``exp(r - g_s)``, both ≤ 0), and the diagonal blocks evaluate
  ``exp(g_t - g_s)`` pairwise with ``s > t`` masked out *before* the exponential.

Precision-safe mode (automatic above ``PRECISION_SAFE_THRESHOLD`` tokens, or forced) changes one
thing: the inter-chunk state recurrence ``S ← diag(D) S + U`` carries a Kahan compensation term,
so the rounding error of the state stays O(eps) instead of growing with the number of chunks.
"""

from __future__ import annotations

import torch
from torch import Tensor

DEFAULT_CHUNK = 64
SUB_CHUNK = 8
PRECISION_SAFE_THRESHOLD = 65536


def resolve_precision_safe(precision_safe: bool | None, length: int) -> bool:
    """``None`` means automatic: on for sequences longer than 64K tokens."""
    return length > PRECISION_SAFE_THRESHOLD if precision_safe is None else bool(precision_safe)


def chunked_liquid_scan(
    q: Tensor,
    k: Tensor,
    v: Tensor,
    log_a: Tensor,
    *,
    initial_state: Tensor | None = None,
    reverse: bool = False,
    output_final_state: bool = False,
    chunk_size: int = DEFAULT_CHUNK,
    precision_safe: bool | None = None,
) -> tuple[Tensor, Tensor | None]:
    """Same contract as :func:`liquid_memory.ops.naive.naive_liquid_scan`, chunk-parallel."""
    if chunk_size % SUB_CHUNK:
        raise ValueError(f"chunk_size must be a multiple of {SUB_CHUNK}, got {chunk_size}")
    if reverse:
        o, state = chunked_liquid_scan(
            q.flip(2), k.flip(2), v.flip(2), log_a.flip(2),
            initial_state=initial_state, output_final_state=output_final_state,
            chunk_size=chunk_size, precision_safe=precision_safe,
        )  # fmt: skip
        return o.flip(2), state
    acc = torch.float64 if q.dtype == torch.float64 else torch.float32
    batch, heads, length, dk = q.shape
    dv = v.shape[-1]
    safe = resolve_precision_safe(precision_safe, length)
    pad = (-length) % chunk_size
    qa, ka, va, la = (_pad_time(x.to(acc), pad) for x in (q, k, v, log_a))
    n_chunks = (length + pad) // chunk_size
    qa, ka, la = (x.reshape(batch, heads, n_chunks, chunk_size, dk) for x in (qa, ka, la))
    va = va.reshape(batch, heads, n_chunks, chunk_size, dv)

    g = la.cumsum(dim=-2)  # cumulative log-decay inside each chunk, ≤ 0 and non-increasing
    g_last = g[..., -1:, :]
    scores = intra_chunk_scores(qa, ka, g)
    o = scores @ va
    contribution = (ka * torch.exp(g_last - g)).transpose(-1, -2) @ va  # [B,H,N,dk,dv]
    chunk_decay = torch.exp(g_last).squeeze(-2)  # [B,H,N,dk]
    if initial_state is None:
        state0 = qa.new_zeros((batch, heads, dk, dv))
    else:
        state0 = initial_state.to(acc)
    entering, final = _state_recurrence(chunk_decay, contribution, state0, compensated=safe)
    o = o + (qa * torch.exp(g)) @ entering
    o = o.reshape(batch, heads, n_chunks * chunk_size, dv)[:, :, :length]
    return o.to(q.dtype), (final if output_final_state else None)


def _pad_time(x: Tensor, pad: int) -> Tensor:
    """Zero-pad the time axis: k = 0 and log_a = 0 leave the state unchanged; padded outputs are cut."""
    return torch.nn.functional.pad(x, (0, 0, 0, pad)) if pad else x


def intra_chunk_scores(q: Tensor, k: Tensor, g: Tensor) -> Tensor:
    """Causal scores ``A[t, s] = Σ_c q_tc k_sc exp(g_tc - g_sc)`` for s ≤ t inside each chunk."""
    chunk = q.shape[-2]
    sub = SUB_CHUNK
    causal = torch.ones(sub, sub, dtype=torch.bool, device=q.device).tril()
    rows = []
    for i in range(chunk // sub):
        lo, hi = i * sub, (i + 1) * sub
        qi, ki, gi = q[..., lo:hi, :], k[..., lo:hi, :], g[..., lo:hi, :]
        diff = gi.unsqueeze(-2) - gi.unsqueeze(-3)  # [.., t, s, d]: g_t - g_s
        diag = torch.einsum(
            "...td,...tsd->...ts",
            qi,
            diff.masked_fill(~causal[:, :, None], float("-inf")).exp() * ki.unsqueeze(-3),
        )
        blocks = []
        if i:
            ref = g[..., lo - 1 : lo, :]
            q_scaled = qi * torch.exp(gi - ref)
            k_scaled = k[..., :lo, :] * torch.exp(ref - g[..., :lo, :])
            blocks.append(q_scaled @ k_scaled.transpose(-1, -2))
        blocks.append(diag)
        if hi < chunk:
            blocks.append(diag.new_zeros(diag.shape[:-1] + (chunk - hi,)))
        rows.append(torch.cat(blocks, dim=-1))
    return torch.cat(rows, dim=-2)


def _state_recurrence(
    decay: Tensor, contribution: Tensor, state0: Tensor, *, compensated: bool
) -> tuple[Tensor, Tensor]:
    """Carry ``S_n = diag(decay_n) S_{n-1} + contribution_n`` across chunks.

    Returns the state entering every chunk ``[B,H,N,dk,dv]`` and the final state. Eager mode runs a
    Python loop; under ``torch.compile``/``torch.export`` the loop becomes a ``scan`` so the number of
    chunks can stay dynamic.
    """
    if torch.compiler.is_compiling():
        return _state_recurrence_scan(decay, contribution, state0, compensated=compensated)
    state, comp = state0, torch.zeros_like(state0)
    entering = []
    for n in range(decay.shape[2]):
        entering.append(state + comp if compensated else state)
        state, comp = _state_step(decay[:, :, n], contribution[:, :, n], state, comp, compensated)
    final = state + comp if compensated else state
    if not entering:
        return state0.unsqueeze(2)[:, :, :0], final
    return torch.stack(entering, dim=2), final


def _state_step(
    decay: Tensor, contribution: Tensor, state: Tensor, comp: Tensor, compensated: bool
) -> tuple[Tensor, Tensor]:
    """One chunk of the state recurrence; with ``compensated`` a Kahan (Fast2Sum) step."""
    decayed = decay.unsqueeze(-1) * state
    if not compensated:
        return decayed + contribution, comp
    addend = decay.unsqueeze(-1) * comp + contribution
    total = decayed + addend
    return total, (decayed - total) + addend


def _state_recurrence_scan(
    decay: Tensor, contribution: Tensor, state0: Tensor, *, compensated: bool
) -> tuple[Tensor, Tensor]:
    from torch._higher_order_ops.scan import scan

    b, h, dk, dv = state0.shape  # AOTI: the body must close over the symbolic batch/heads (binds them)

    def combine(carry: tuple[Tensor, Tensor], x: tuple[Tensor, Tensor]):
        state, comp = carry
        entering = (state + comp if compensated else state.clone()).reshape(b, h, dk, dv)
        new_state, new_comp = _state_step(x[0], x[1], state, comp, compensated)
        return (new_state, new_comp.clone()), entering  # scan forbids a carry aliasing its input

    xs = (decay.movedim(2, 0), contribution.movedim(2, 0))
    if not torch.compiler.is_exporting():
        # torch.compile specialises a batch of 1, and scan needs every carry to keep the init's exact
        # strides: contiguous scanned inputs make the computed carries contiguous like the init. (Under
        # torch.export the sizes stay symbolic, and inductor rejects the copy there: AOTI artifacts.)
        xs = (xs[0].contiguous(), xs[1].contiguous())
    (state, comp), entering = scan(combine, (state0, torch.zeros_like(state0)), xs)
    final = state + comp if compensated else state
    return entering.movedim(0, 2), final
