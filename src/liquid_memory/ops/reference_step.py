"""One decode step of the recurrence in plain PyTorch: the reference beside the C++ ``scan_step``."""

from __future__ import annotations

import torch
from torch import Tensor


def reference_liquid_step(
    q_t: Tensor, k_t: Tensor, v_t: Tensor, log_a_t: Tensor, state: Tensor
) -> tuple[Tensor, Tensor]:
    """``S ← diag(exp(log_a_t)) S + k_t v_t^T``; ``o_t = S^T q_t``. Inputs ``[B, H, d]``, state ``[B, H, d, d]`` fp32.

    Returns ``(o_t in q_t's dtype, new_state)``; the input state is not modified.
    """
    acc = state.dtype
    new_state = log_a_t.to(acc).exp().unsqueeze(-1) * state + k_t.to(acc).unsqueeze(-1) * v_t.to(acc).unsqueeze(-2)
    o_t = torch.einsum("bhd,bhde->bhe", q_t.to(acc), new_state)
    return o_t.to(q_t.dtype), new_state
