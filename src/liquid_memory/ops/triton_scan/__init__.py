"""The ``triton`` backend of ``liquid_scan`` (docs/architecture.md §3 and §4): GPU kernels written in Triton.

Chunked forward and backward (autograd-capable) and a one-token decode step, all with fp32 state and
fp32 accumulation; bf16/fp16/fp32 in, output in the input dtype. On a machine without a GPU the kernels
run only under the Triton interpreter (``TRITON_INTERPRET=1`` set before this package first imports
``triton``), which accepts CPU tensors — that is how the tests verify them. See README.md beside this file.
"""

from __future__ import annotations

import functools
import os
import sys

import torch
from torch import Tensor

from liquid_memory.ops.chunked import resolve_precision_safe

DEFAULT_CHUNK = 64


class TritonUnavailable(RuntimeError):
    """Triton is not installed, or the tensors are on a device the Triton backend cannot run on here."""


def interpreter_enabled() -> bool:
    """Whether the kernels run (or will run, once first imported) in the Triton interpreter.

    Triton decides at decoration time, i.e. when ``kernels.py`` is first imported, so once loaded the
    kernels' own kind is the truth; before that, ``TRITON_INTERPRET``.
    """
    launch = sys.modules.get("liquid_memory.ops.triton_scan.launch")
    if launch is not None:
        return launch.INTERPRETED
    return os.environ.get("TRITON_INTERPRET", "0").lower() in ("1", "true", "on", "yes")


def triton_available() -> bool:
    """True when ``triton`` is installed and there is somewhere to run it: a CUDA device or the interpreter."""
    try:
        import triton  # noqa: F401  (importing triton does not decorate our kernels: TRITON_INTERPRET may come later)
    except ImportError:
        return False
    return torch.cuda.is_available() or interpreter_enabled()


@functools.cache
def _launch():
    try:
        from liquid_memory.ops.triton_scan import launch
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise TritonUnavailable(
            f"the triton backend needs the `triton` package ({exc}); install it or choose another backend"
        ) from exc
    return launch


def _check_device(*tensors: Tensor) -> None:
    device = tensors[0].device
    if any(t.device != device for t in tensors):
        raise ValueError(
            f"all liquid_scan inputs must be on one device, got {sorted({str(t.device) for t in tensors})}"
        )
    if device.type == "cuda":
        return
    if device.type == "cpu" and interpreter_enabled():
        return
    raise TritonUnavailable(
        f"the triton backend runs on CUDA tensors (got {device.type}); CPU tensors work only in the Triton "
        "interpreter (set TRITON_INTERPRET=1 before importing triton) — use the cpp backend on CPU instead"
    )


def _check_shapes(q: Tensor, k: Tensor, v: Tensor, log_a: Tensor, initial_state: Tensor | None) -> None:
    if q.dim() != 4 or k.shape != q.shape or log_a.shape != q.shape or v.dim() != 4 or v.shape[:3] != q.shape[:3]:
        raise ValueError(
            "triton_liquid_scan expects q, k, log_a of one shape [B, H, T, d] and v of shape [B, H, T, dv]; got "
            f"q {tuple(q.shape)}, k {tuple(k.shape)}, v {tuple(v.shape)}, log_a {tuple(log_a.shape)}"
        )
    expected = (*q.shape[:2], q.shape[3], v.shape[3])
    if initial_state is not None and tuple(initial_state.shape) != expected:
        raise ValueError(f"initial_state must be [B, H, d, dv] = {expected}, got {tuple(initial_state.shape)}")
    for name, t in (("q", q), ("k", k), ("v", v)):
        if t.dtype not in (torch.float32, torch.bfloat16, torch.float16):
            raise TypeError(f"triton_liquid_scan: {name} must be float32, bfloat16 or float16, got {t.dtype}")


def triton_liquid_scan(
    q: Tensor,
    k: Tensor,
    v: Tensor,
    log_a: Tensor,
    *,
    initial_state: Tensor | None = None,
    reverse: bool = False,
    output_final_state: bool = False,
    precision_safe: bool | None = None,
    chunk_size: int = DEFAULT_CHUNK,
) -> tuple[Tensor, Tensor | None]:
    """``S_t = diag(exp(log_a_t)) S_{t-1} + k_t v_t^T``, ``o_t = S_t^T q_t`` with Triton kernels.

    ``q, k, v``: ``[B, H, T, d]`` fp32/bf16/fp16 (``v`` may have its own last dim); ``log_a``: same shape,
    computed in fp32. Returns ``o`` in ``q``'s dtype and, if ``output_final_state``, the final state
    ``[B, H, d, dv]`` fp32. Differentiable in q, k, v, log_a and initial_state. ``reverse=True`` runs the
    recurrence from the end (done by flipping time around the forward kernels). ``precision_safe``
    (``None``: automatic above 64K tokens) adds a Kahan compensation to the state carried across chunks,
    in the forward and the backward. ``chunk_size`` is a multiple of 16 (the sub-block size).
    """
    _check_shapes(q, k, v, log_a, initial_state)
    _check_device(q, k, v, log_a, *(() if initial_state is None else (initial_state,)))
    if chunk_size < 16 or chunk_size % 16:
        raise ValueError(f"chunk_size must be a positive multiple of 16, got {chunk_size}")
    safe = resolve_precision_safe(precision_safe, q.shape[2])
    if reverse:
        q, k, v, log_a = (x.flip(2) for x in (q, k, v, log_a))
    q, k, v = q.contiguous(), k.contiguous(), v.contiguous()
    log_a = log_a.to(torch.float32).contiguous()
    h0 = None if initial_state is None else initial_state.to(torch.float32).contiguous()
    o, final = _launch().TritonLiquidScan.apply(q, k, v, log_a, h0, chunk_size, safe)
    if reverse:
        o = o.flip(2)
    return o, (final if output_final_state else None)


def triton_liquid_step(q_t: Tensor, k_t: Tensor, v_t: Tensor, log_a_t: Tensor, state: Tensor) -> tuple[Tensor, Tensor]:
    """One decode token: inputs ``[B, H, d]``, state ``[B, H, d, dv]`` fp32 → ``(o_t in q_t's dtype, new_state)``.

    The input state is not modified (inference only: no autograd through this kernel).
    """
    if q_t.dim() != 3 or k_t.shape != q_t.shape or log_a_t.shape != q_t.shape or v_t.shape[:2] != q_t.shape[:2]:
        raise ValueError(
            "triton_liquid_step expects q_t, k_t, log_a_t of shape [B, H, d] and v_t [B, H, dv]; got "
            f"q_t {tuple(q_t.shape)}, k_t {tuple(k_t.shape)}, v_t {tuple(v_t.shape)}, log_a_t {tuple(log_a_t.shape)}"
        )
    expected = (*q_t.shape, v_t.shape[-1])
    if tuple(state.shape) != expected or state.dtype != torch.float32:
        raise ValueError(f"state must be float32 of shape {expected}, got {state.dtype} {tuple(state.shape)}")
    _check_device(q_t, k_t, v_t, log_a_t, state)
    q_t, k_t, v_t = q_t.contiguous(), k_t.contiguous(), v_t.contiguous()
    return _launch().step(q_t, k_t, v_t, log_a_t.to(torch.float32).contiguous(), state.contiguous())


__all__ = ["TritonUnavailable", "triton_available", "triton_liquid_scan", "triton_liquid_step"]
