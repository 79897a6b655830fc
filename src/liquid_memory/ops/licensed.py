"""The ``cpp`` kernels as seen by ``torch.compile``: opaque ops that re-check the licence on every call.

``liquid_scan`` routes compiled code here (eager code checks in Python before each call). Each op's Python
body runs at run time, outside the traced graph: it calls ``liquid_memory.licensing.require_feature("kernel")``
(cached verification, dates re-checked: about a microsecond) and then the C++ op. A compiled model therefore
raises the typed licence error once its key expires or is removed, and a graph exported with these ops
refuses to run in a process without a licence.
"""

from __future__ import annotations

import torch
from torch import Tensor

from liquid_memory.licensing import require_feature
from liquid_memory.ops.chunked import resolve_precision_safe


def _kernels():
    from liquid_memory.ops.cpp import _require

    require_feature("kernel")
    return _require()


@torch.library.custom_op("liquid_memory_licensed::scan_fwd", mutates_args=())
def scan_fwd(
    q: Tensor, k: Tensor, v: Tensor, log_a: Tensor, initial_state: Tensor | None, reverse: bool, precision_safe: bool
) -> tuple[Tensor, Tensor]:
    o, final = _kernels().liquid_scan_fwd(q, k, v, log_a, initial_state, reverse, precision_safe)
    # The kernels pick their output layout from q's strides (``ops.cpp.heads_inner``); the strides Inductor
    # traces with need not be the run-time ones, so the compiled path always hands back contiguous tensors.
    return o.contiguous(), final


@scan_fwd.register_fake
def _(q, k, v, log_a, initial_state, reverse, precision_safe):
    b, h, _, d = q.shape
    return q.new_empty(q.shape), q.new_empty((b, h, d, d), dtype=torch.float32)


@torch.library.custom_op("liquid_memory_licensed::scan_bwd", mutates_args=())
def scan_bwd(
    q: Tensor,
    k: Tensor,
    v: Tensor,
    log_a: Tensor,
    initial_state: Tensor | None,
    grad_o: Tensor,
    grad_final: Tensor | None,
    reverse: bool,
    precision_safe: bool,
) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
    dq, dk, dv, dla, dinit = _kernels().liquid_scan_bwd(
        q, k, v, log_a, initial_state, grad_o, grad_final, reverse, precision_safe
    )
    return dq.contiguous(), dk.contiguous(), dv.contiguous(), dla.contiguous(), dinit


@scan_bwd.register_fake
def _(q, k, v, log_a, initial_state, grad_o, grad_final, reverse, precision_safe):
    b, h, _, d = q.shape
    state = q.new_empty((b, h, d, d), dtype=torch.float32)
    return q.new_empty(q.shape), k.new_empty(k.shape), v.new_empty(v.shape), log_a.new_empty(log_a.shape), state


def _register_autograd() -> None:
    from liquid_memory.ops.cpp import save_scan_context, scan_backward

    scan_fwd.register_autograd(scan_backward(scan_bwd), setup_context=save_scan_context)


_register_autograd()


@torch.library.custom_op("liquid_memory_licensed::step_", mutates_args=("state",))
def step_(q: Tensor, k: Tensor, v: Tensor, log_a: Tensor, state: Tensor) -> Tensor:
    return _kernels().liquid_step_(q, k, v, log_a, state)


@step_.register_fake
def _(q, k, v, log_a, state):
    return torch.empty_like(q)


def licensed_cpp_scan(q, k, v, log_a, *, initial_state=None, reverse=False, output_final_state=False,
                      precision_safe=None):  # fmt: skip
    """``cpp_liquid_scan``'s contract through the re-checking op (used while compiling)."""
    if v.shape != q.shape:
        raise ValueError(f"the cpp backend needs dk == dv (v of shape {tuple(q.shape)}); got v {tuple(v.shape)}")
    log_a = log_a if log_a.dtype == torch.float32 else log_a.float()
    if initial_state is not None and initial_state.dtype != torch.float32:
        initial_state = initial_state.float()
    o, final = scan_fwd(q, k, v, log_a, initial_state, reverse, resolve_precision_safe(precision_safe, q.shape[2]))
    return o, (final if output_final_state else None)


def licensed_cpp_step(q_t, k_t, v_t, log_a_t, state):
    """``cpp_liquid_step``'s contract (state updated in place) through the re-checking op."""
    return step_(q_t, k_t, v_t, log_a_t, state), state
