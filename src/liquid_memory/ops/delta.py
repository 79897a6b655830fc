"""The gated delta rule with LiquidMemory's per-channel ("liquid") decay: sequential oracle, chunked form, one step.

Per head, state ``S ∈ R^{dk×dv}`` (fp32, or float64 for float64 inputs), ``a_t = exp(log_a_t)`` per key channel,
write strength ``β_t ∈ [0, 1]`` per head and token, unit-norm keys (the module requires ``qk_norm=True``)::

    S_t = (I − β_t k_t k_tᵀ) diag(a_t) S_{t−1} + β_t k_t v_tᵀ          o_t = S_tᵀ q_t

The state decays first, then the delta rule corrects what the decayed state returns for ``k_t`` towards ``v_t``
(Kimi Delta Attention's order: with ``β_t = 1`` reading ``k_t`` right after the write gives exactly ``v_t``).
With one decay per head (all channels equal) this is Gated DeltaNet's ``α_t (I − β_t k_t k_tᵀ) S_{t−1} + β_t k_t v_tᵀ``.

Why chunking works: the update is ``S_t = diag(a_t) S_{t−1} + k_t u_tᵀ`` with the pseudo-value
``u_t = β_t (v_t − (diag(a_t) S_{t−1})ᵀ k_t)``, i.e. LiquidMemory's own recurrence once ``u`` is known. Inside a
chunk starting from ``S_0``, with ``Γ_t`` the cumulative decay since the chunk start, the ``u`` solve the unit
lower-triangular system ``(I + A) U = β V − β (Γ ⊙ K) S_0`` with ``A_ts = β_t Σ_c k_tc k_sc Γ_tc/Γ_sc`` (s < t) —
the UT transform of Yang et al. 2024 ("Parallelizing Linear Transformers with the Delta Rule over Sequence
Length"). Everything but ``S_0`` is computed for all chunks at once; a loop over chunks carries the state.
Every exponent evaluated is a difference ``g_t − g_s`` of cumulative log-decays with ``s ≤ t`` (≤ 0), so no
decay can overflow: when a chunk's total decay stays within ``exp(±FACTOR_LIMIT)`` the products factor into two GEMMs
(``q e^{g}`` · ``k e^{−g}``), otherwise one ``[C, C, dk]`` tensor of ``exp(g_t − g_s)`` per chunk is formed (exact).

Pure PyTorch (autograd differentiates it); the compiled ``liquid_scan`` backends do not implement this recurrence.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

DEFAULT_CHUNK = 16
# The factorised fast form multiplies by exp(−g) with g the cumulative log-decay in a chunk: allowed while |g| ≤ this
# (exp(30) ≈ 1e13, far from fp32's 3e38 even after a backward multiplies it by large gradients).
FACTOR_LIMIT = 30.0


def _acc_dtype(q: Tensor) -> torch.dtype:
    return torch.float64 if q.dtype == torch.float64 else torch.float32


def _check(q: Tensor, k: Tensor, v: Tensor, log_a: Tensor, beta: Tensor) -> None:
    if q.dim() != 4 or k.shape != q.shape or log_a.shape != q.shape or v.shape[:3] != q.shape[:3]:
        raise ValueError(
            "delta scan expects q, k, log_a [B, H, T, dk] and v [B, H, T, dv]; got "
            f"q {tuple(q.shape)}, k {tuple(k.shape)}, v {tuple(v.shape)}, log_a {tuple(log_a.shape)}"
        )
    if beta.shape != q.shape[:3]:
        raise ValueError(f"beta must be [B, H, T] = {tuple(q.shape[:3])}, got {tuple(beta.shape)}")


def _initial(q: Tensor, dv: int, initial_state: Tensor | None, acc: torch.dtype) -> Tensor:
    batch, heads, _, dk = q.shape
    if initial_state is None:
        return q.new_zeros((batch, heads, dk, dv), dtype=acc)
    if tuple(initial_state.shape) != (batch, heads, dk, dv):
        raise ValueError(f"initial_state must be {(batch, heads, dk, dv)}, got {tuple(initial_state.shape)}")
    return initial_state.to(acc)


def naive_delta_scan(
    q: Tensor,
    k: Tensor,
    v: Tensor,
    log_a: Tensor,
    beta: Tensor,
    *,
    initial_state: Tensor | None = None,
    output_final_state: bool = False,
) -> tuple[Tensor, Tensor | None]:
    """The oracle: token by token. ``o`` in ``q``'s dtype, final state in the accumulation dtype."""
    _check(q, k, v, log_a, beta)
    acc = _acc_dtype(q)
    state = _initial(q, v.shape[-1], initial_state, acc)
    qa, ka, va, decay, ba = q.to(acc), k.to(acc), v.to(acc), log_a.to(acc).exp(), beta.to(acc)
    outputs = []
    for t in range(q.shape[2]):
        o_t, state = _update(qa[:, :, t], ka[:, :, t], va[:, :, t], decay[:, :, t], ba[:, :, t], state)
        outputs.append(o_t)
    o = torch.stack(outputs, dim=2) if outputs else qa.new_empty((*q.shape[:3], v.shape[-1]))
    return o.to(q.dtype), (state if output_final_state else None)


def _update(q_t: Tensor, k_t: Tensor, v_t: Tensor, a_t: Tensor, b_t: Tensor, state: Tensor) -> tuple[Tensor, Tensor]:
    """One token (``[B, H, d]`` inputs, ``a_t`` the decay itself, ``b_t`` ``[B, H]``): decay, delta write, read."""
    state = a_t[..., None] * state
    error = v_t - torch.einsum("bhd,bhde->bhe", k_t, state)
    state = state + (b_t[..., None, None] * k_t[..., :, None]) * error[..., None, :]
    return torch.einsum("bhd,bhde->bhe", q_t, state), state


def delta_step(
    q_t: Tensor, k_t: Tensor, v_t: Tensor, log_a_t: Tensor, beta_t: Tensor, state: Tensor
) -> tuple[Tensor, Tensor]:
    """Decode: one token per sequence (``[B, H, d]``, ``beta_t`` ``[B, H]``) from ``state`` ``[B, H, dk, dv]``.
    Returns (``o_t`` in ``q_t``'s dtype, the new state in the accumulation dtype): a new tensor, ``state`` untouched."""
    acc = torch.float64 if q_t.dtype == torch.float64 or state.dtype == torch.float64 else torch.float32
    cast = (t.to(acc) for t in (q_t, k_t, v_t, log_a_t, beta_t))
    qa, ka, va, la, ba = cast
    o_t, new_state = _update(qa, ka, va, la.exp(), ba, state.to(acc))
    return o_t.to(q_t.dtype), new_state


def chunked_delta_scan(
    q: Tensor,
    k: Tensor,
    v: Tensor,
    log_a: Tensor,
    beta: Tensor,
    *,
    initial_state: Tensor | None = None,
    output_final_state: bool = False,
    chunk_size: int = DEFAULT_CHUNK,
) -> tuple[Tensor, Tensor | None]:
    """The same recurrence chunk-parallel (UT transform, see the module docstring); same contract as the oracle."""
    _check(q, k, v, log_a, beta)
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be >= 1, got {chunk_size}")
    acc = _acc_dtype(q)
    batch, heads, length, dk = q.shape
    dv = v.shape[-1]
    state = _initial(q, dv, initial_state, acc)
    if length == 0:
        return q.new_empty((batch, heads, 0, dv)), (state if output_final_state else None)
    pad = -length % chunk_size  # padded tokens: k = 0 writes nothing, log_a = 0 keeps the state
    n, c = (length + pad) // chunk_size, chunk_size

    def blocks(x: Tensor) -> Tensor:
        x = F.pad(x.to(acc), (0, 0, 0, pad))
        return x.reshape(batch, heads, n, c, x.shape[-1])

    qc, kc, vc, lc = blocks(q), blocks(k), blocks(v), blocks(log_a)
    bc = F.pad(beta.to(acc), (0, pad)).reshape(batch, heads, n, c, 1)
    g = lc.cumsum(dim=3)  # cumulative log-decay since the chunk start (≤ 0, non-increasing)
    scores, strict = _decayed_products(qc, kc, g)  # q_tᵀ diag(Γ_t/Γ_s) k_s (s ≤ t), k_tᵀ diag(Γ_t/Γ_s) k_s (s < t)
    strict = strict * bc  # A_ts = β_t k_tᵀ diag(Γ_t/Γ_s) k_s
    eye = torch.eye(c, dtype=acc, device=q.device)
    system = eye + strict
    w_v = torch.linalg.solve_triangular(system, bc * vc, upper=False, unitriangular=True)
    w_k = torch.linalg.solve_triangular(system, bc * (g.exp() * kc), upper=False, unitriangular=True)
    q_decayed = g.exp() * qc
    last = g[..., -1:, :]
    k_to_end = (last - g).exp() * kc  # Γ_C/Γ_s ⊙ k_s
    chunk_decay = last.exp().transpose(-1, -2)  # [B, H, n, dk, 1]
    outputs = []
    for i in range(n):
        u = w_v[:, :, i] - w_k[:, :, i] @ state
        outputs.append(q_decayed[:, :, i] @ state + scores[:, :, i] @ u)
        state = chunk_decay[:, :, i] * state + k_to_end[:, :, i].transpose(-1, -2) @ u
    o = torch.stack(outputs, dim=2).reshape(batch, heads, n * c, dv)[:, :, :length]
    return o.to(q.dtype), (state if output_final_state else None)


def _decayed_products(qc: Tensor, kc: Tensor, g: Tensor) -> tuple[Tensor, Tensor]:
    """``[.., C, C]`` matrices ``q_tᵀ diag(exp(g_t − g_s)) k_s`` (s ≤ t) and ``k_tᵀ diag(exp(g_t − g_s)) k_s`` (s < t).

    Fast form when every chunk's total log-decay is ≥ −FACTOR_LIMIT on every channel:
    ``(q_t e^{g_t}) · (k_s e^{−g_s})``, two GEMMs, every exponent within ±FACTOR_LIMIT. Otherwise (strong
    decays) the exact form: the ``[C, C, dk]`` tensor of ``exp(g_t − g_s)``, masked above the diagonal before
    ``exp`` so every exponent is ≤ 0. Same math either way."""
    c = g.shape[-2]
    causal = torch.ones(c, c, dtype=torch.bool, device=g.device).tril()
    if bool((g[..., -1, :] >= -FACTOR_LIMIT).all()):
        k_in = kc * (-g).exp()
        scores = (qc * g.exp()) @ k_in.transpose(-1, -2)
        keys = (kc * g.exp()) @ k_in.transpose(-1, -2)
        return scores.masked_fill(~causal, 0.0), keys.tril(-1)
    decay = (g[..., :, None, :] - g[..., None, :, :]).masked_fill(~causal[..., None], float("-inf")).exp()
    kd = decay * kc[..., None, :, :]  # [.., t, s, ch]: Γ_t/Γ_s ⊙ k_s; 0 above the diagonal (no overflow, no NaN)
    scores = torch.einsum("bhntc,bhntsc->bhnts", qc, kd)
    return scores, torch.einsum("bhntc,bhntsc->bhnts", kc, kd).tril(-1)


def delta_scan(
    q: Tensor,
    k: Tensor,
    v: Tensor,
    log_a: Tensor,
    beta: Tensor,
    *,
    initial_state: Tensor | None = None,
    output_final_state: bool = False,
    backend: str = "chunked",
) -> tuple[Tensor, Tensor | None]:
    """The entry the module calls: ``chunked`` (default) or ``naive``. Whatever ``LiquidMemory(backend=...)`` names,
    the delta rule runs here in PyTorch: no compiled kernel implements it (and none is unlocked by this path)."""
    scan = naive_delta_scan if backend == "naive" else chunked_delta_scan
    return scan(q, k, v, log_a, beta, initial_state=initial_state, output_final_state=output_final_state)
