"""The sequential oracle for ``liquid_scan``: one token at a time, exactly the recurrence of docs/architecture.md §3.

Slow on purpose. Every fast backend is tested against this function (in float64 where it matters).
"""

from __future__ import annotations

import torch
from torch import Tensor


def naive_liquid_scan(
    q: Tensor,
    k: Tensor,
    v: Tensor,
    log_a: Tensor,
    *,
    initial_state: Tensor | None = None,
    reverse: bool = False,
    output_final_state: bool = False,
) -> tuple[Tensor, Tensor | None]:
    """Run ``S_t = diag(exp(log_a_t)) S_{t-1} + k_t v_t^T; o_t = S_t^T q_t`` token by token.

    Inputs are ``[B, H, T, d]`` (``v`` may have its own last dim). Accumulates in float64 when ``q`` is
    float64 and in float32 otherwise; ``o`` comes back in ``q``'s dtype and the final state in the
    accumulation dtype. ``reverse=True`` runs the recurrence from ``t = T-1`` down to ``0``.
    """
    acc = torch.float64 if q.dtype == torch.float64 else torch.float32
    batch, heads, length, dk = q.shape
    dv = v.shape[-1]
    if initial_state is None:
        state = q.new_zeros((batch, heads, dk, dv), dtype=acc)
    else:
        state = initial_state.to(acc)
    qa, ka, va, decay = q.to(acc), k.to(acc), v.to(acc), log_a.to(acc).exp()
    outputs: list[Tensor] = [q.new_empty(0)] * length
    steps = range(length - 1, -1, -1) if reverse else range(length)
    for t in steps:
        state = decay[:, :, t, :, None] * state + ka[:, :, t, :, None] * va[:, :, t, None, :]
        outputs[t] = torch.einsum("bhd,bhde->bhe", qa[:, :, t], state)
    if length:
        o = torch.stack(outputs, dim=2).to(q.dtype)
    else:
        o = q.new_empty((batch, heads, 0, dv))
    return o, (state if output_final_state else None)
