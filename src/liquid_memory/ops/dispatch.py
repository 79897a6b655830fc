"""``liquid_scan`` / ``liquid_step``: the one entry point every caller uses, and the backend choice.

Backends (docs/architecture.md §4): ``naive`` and ``chunked`` (alias ``reference``) are pure PyTorch and usable
without a licence when explicitly chosen; ``cpp``, ``aoti`` and ``triton`` are compiled and run only after
``liquid_memory.licensing.require_feature("kernel")`` succeeds. The choice comes from the ``backend``
argument, else ``LM_BACKEND``, else the fastest compiled backend for the device (``cpp`` on CPU —
measured faster than ``aoti`` and ``chunked`` by ``liquid-memory bench --mixer`` — and ``triton`` on CUDA).
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from liquid_memory.ops.chunked import chunked_liquid_scan
from liquid_memory.ops.licence_hold import held, hold
from liquid_memory.ops.naive import naive_liquid_scan
from liquid_memory.ops.reference_step import reference_liquid_step

REFERENCE_BACKENDS = ("naive", "chunked", "reference")
COMPILED_BACKENDS = ("cpp", "aoti", "triton")
ALL_BACKENDS = REFERENCE_BACKENDS + COMPILED_BACKENDS

_warned_reference = False
_NOT_BUILT = (
    "the C++ extension liquid_memory._C is not built; reinstall with "
    "`pip install --no-build-isolation .` or set LM_BACKEND=reference"
)


class BackendUnavailable(RuntimeError):
    """The requested backend cannot run here (not built, wrong device, or not an inference call)."""


def resolve_backend(backend: str | None, *, device_type: str = "cpu") -> str:
    """Explicit argument, else ``LM_BACKEND``, else the default compiled backend for the device."""
    name = (backend or os.environ.get("LM_BACKEND") or "").strip().lower()
    if not name or name == "auto":
        if device_type not in ("cpu", "cuda"):
            raise BackendUnavailable(
                f"no compiled backend for device '{device_type}' in this build; "
                "set LM_BACKEND=reference to run the pure-PyTorch path"
            )
        name = "cpp" if device_type == "cpu" else "triton"
    if name not in ALL_BACKENDS:
        raise ValueError(f"unknown liquid_scan backend {name!r}; choose one of {', '.join(ALL_BACKENDS)}")
    return name


def _require_licence() -> bool:
    """Verify the licence (cached by the licensing module; dates re-checked) — on every eager call.

    Compiled code never reaches this: ``_compiled_scan`` hands it ops whose bodies re-check at run time
    (``liquid_memory.ops.licensed``), or, for backends without such ops, a check dynamo leaves outside the graph.
    """
    from liquid_memory import licensing

    licensing.require_feature("kernel")
    return True


@torch.compiler.disable
def _require_licence_outside_graph() -> bool:
    """A graph break: this runs on every call of a compiled function, never inside its graph."""
    return _require_licence()


def _warn_reference_once(backend: str) -> None:
    global _warned_reference
    if not _warned_reference and not torch.compiler.is_compiling():
        _warned_reference = True
        warnings.warn(
            f"liquid_memory is using the pure-PyTorch '{backend}' backend: the slow, unlicensed evaluation "
            "path. Set LM_PRIVATE_KEY to a licence key to use the compiled kernels.",
            stacklevel=3,
        )


def liquid_scan(
    q: Tensor,
    k: Tensor,
    v: Tensor,
    log_a: Tensor,
    *,
    initial_state: Tensor | None = None,
    reverse: bool = False,
    output_final_state: bool = False,
    backend: str | None = None,
    precision_safe: bool | None = None,
) -> tuple[Tensor, Tensor | None]:
    """The kernel boundary (docs/architecture.md §3):
    ``S_t = diag(exp(log_a_t)) S_{t-1} + k_t v_t^T``, ``o_t = S_t^T q_t``.

    ``q, k, v``: ``[B, H, T, d]`` fp32/bf16/fp16; ``log_a``: ``[B, H, T, d]`` fp32, ≤ 0. Returns ``o`` in
    the input dtype (accumulated in fp32) and, if asked, the final state ``[B, H, d, d]`` fp32.
    """
    _check_scan_inputs(q, k, v, log_a, initial_state)
    name = resolve_backend(backend, device_type=q.device.type)
    kwargs = dict(initial_state=initial_state, reverse=reverse, output_final_state=output_final_state)
    if name in REFERENCE_BACKENDS:
        _warn_reference_once(name)
        if name == "naive":
            return naive_liquid_scan(q, k, v, log_a, **kwargs)
        return chunked_liquid_scan(q, k, v, log_a, precision_safe=precision_safe, **kwargs)
    if torch.compiler.is_compiling():
        if name == "cpp":  # one opaque op that re-checks the licence inside its run-time body
            from liquid_memory.ops.licensed import licensed_cpp_scan

            return licensed_cpp_scan(q, k, v, log_a, precision_safe=precision_safe, **kwargs)
        _require_licence_outside_graph()
    else:
        _require_licence()
    return _compiled_scan(name)(q, k, v, log_a, precision_safe=precision_safe, **kwargs)


def liquid_scan_readout(
    q: Tensor,
    k: Tensor,
    v: Tensor,
    log_a: Tensor,
    *,
    norm_weight: Tensor | None,
    eps: float = 1e-5,
    out_scale: float = 1.0,
    initial_state: Tensor | None = None,
    output_final_state: bool = False,
    backend: str | None = None,
    precision_safe: bool | None = None,
) -> tuple[Tensor, Tensor | None]:
    """Causal ``liquid_scan`` followed by the layer's read-out, for inference (no autograd through it).

    Per head ``h`` and step ``t``: ``r_t = o_t · rsqrt(mean_c(o_t²) + eps) · w_h`` with ``norm_weight``
    ``[H·d]`` (``w_h`` its h-th slice), else ``r_t = out_scale · o_t``. The ``cpp`` backend applies it in the
    scan's epilogue; every other backend composes ``liquid_scan`` and :func:`reference_readout` (the
    reference the tests compare against).
    """
    _check_scan_inputs(q, k, v, log_a, initial_state)
    name = resolve_backend(backend, device_type=q.device.type)
    kwargs = dict(initial_state=initial_state, output_final_state=output_final_state)
    # Under torch.compile the fused read-out op has no licensed twin that re-checks at run time, so compiled
    # code takes the licensed scan below (``liquid_memory_licensed::scan_fwd``) plus the reference read-out.
    if name == "cpp" and v.shape == q.shape and not torch.compiler.is_compiling():
        _require_licence()
        from liquid_memory.ops.cpp import cpp_available, cpp_liquid_scan_readout

        if not cpp_available():
            raise BackendUnavailable(_NOT_BUILT)
        return cpp_liquid_scan_readout(
            q, k, v, log_a, norm_weight=norm_weight, eps=eps, out_scale=out_scale, precision_safe=precision_safe,
            **kwargs,
        )  # fmt: skip
    o, state = liquid_scan(q, k, v, log_a, backend=backend, precision_safe=precision_safe, **kwargs)
    return reference_readout(o, norm_weight, eps, out_scale), state


def reference_readout(o: Tensor, norm_weight: Tensor | None, eps: float, out_scale: float) -> Tensor:
    """``o`` ``[B, H, T, d]`` → ``o · rsqrt(mean(o²) + eps) · w_h`` (fp32 statistics), or ``out_scale · o``."""
    if norm_weight is None:
        return o * out_scale
    heads, dim = o.shape[1], o.shape[3]
    compute = torch.promote_types(o.dtype, torch.float32)  # fp32 statistics; float64 stays float64
    of = o.to(compute)
    normed = of * torch.rsqrt(of.pow(2).mean(-1, keepdim=True) + eps)
    return (normed * norm_weight.to(compute).view(heads, 1, dim)).to(o.dtype)


def liquid_step(
    q_t: Tensor, k_t: Tensor, v_t: Tensor, log_a_t: Tensor, state: Tensor, *, backend: str | None = None
) -> tuple[Tensor, Tensor]:
    """One decode token: inputs ``[B, H, d]``, state ``[B, H, d, d]`` fp32 → ``(o_t, new_state)``."""
    name = resolve_backend(backend, device_type=q_t.device.type)
    if name in REFERENCE_BACKENDS:
        _warn_reference_once(name)
        return reference_liquid_step(q_t, k_t, v_t, log_a_t, state)
    if torch.compiler.is_compiling():
        if name == "cpp":
            from liquid_memory.ops.licensed import licensed_cpp_step

            return licensed_cpp_step(q_t, k_t, v_t, log_a_t, state)
        _require_licence_outside_graph()
    else:
        _require_licence()
    # The AOTInductor artifacts hold the chunked prefill only; their decode runs on the C++ step.
    return _compiled_step(name)(q_t, k_t, v_t, log_a_t, state)


def grouped_scan_kernel(
    backend: str | None, *, device_type: str = "cpu"
) -> Callable[..., tuple[Tensor, Tensor]] | None:
    """The compiled causal scan with ``G`` query heads per KV head (``ops/cpp.py``'s ``cpp_liquid_scan_grouped``:
    each KV head's recurrence once), licence checked, when ``backend`` resolves to ``cpp`` on a CPU and no autograd
    is needed; ``None`` otherwise and under ``torch.compile`` — the caller then repeats the KV heads ``G`` times
    and runs ``liquid_scan`` (the reference: ``hf/hybrid.py``'s ``_grouped_scan``)."""
    if torch.is_grad_enabled():
        return None
    return _licensed_cpp_op("cpp_liquid_scan_grouped", backend, device_type)


def hybrid_decode_kernel(backend: str | None, *, device_type: str = "cpu") -> Callable[..., Tensor] | None:
    """The compiled one-token hybrid attention step (``ops/cpp.py``'s ``cpp_hybrid_decode``), licence checked,
    when ``backend`` resolves to ``cpp`` on a CPU; ``None`` otherwise and under ``torch.compile`` — the caller then
    runs its reference (``hf/decode_step.py``'s ``decode_core``, through ``liquid_step``)."""
    return _licensed_cpp_op("cpp_hybrid_decode", backend, device_type)


def int8_linear_kernel(backend: str | None, *, device_type: str = "cpu") -> Callable[..., Tensor] | None:
    """The compiled weight-only int8 matmul for a few rows (``ops/cpp.py``'s ``cpp_int8_linear``), licence checked,
    when ``backend`` resolves to ``cpp`` on a CPU and no autograd is needed; ``None`` otherwise and under
    ``torch.compile`` — the caller then runs torch's int8 kernel (``hf/weights.py``'s ``Int8Linear``)."""
    if torch.is_grad_enabled():
        return None
    return _licensed_cpp_op("cpp_int8_linear", backend, device_type)


def _licensed_cpp_op(name: str, backend: str | None, device_type: str) -> Callable[..., Any] | None:
    """``ops/cpp.py``'s ``name`` when ``backend`` resolves to ``cpp`` on a CPU outside ``torch.compile`` (the
    extension built and the licence valid, else a typed error); ``None`` otherwise.

    Inside a model forward with a licence hold (``ops/licence_hold.py``) the answer is checked the first time
    and then reused until the forward ends; :func:`_resolve_cpp_op` is the check itself."""
    if device_type != "cpu" or torch.compiler.is_compiling():
        return None
    key = (name, backend, device_type)
    op = held(key)
    if op is False:
        op = _resolve_cpp_op(name, backend, device_type)
        hold(key, op)
    return op


def _resolve_cpp_op(name: str, backend: str | None, device_type: str) -> Callable[..., Any] | None:
    if resolve_backend(backend, device_type=device_type) != "cpp":
        return None
    from liquid_memory.ops import cpp

    if not cpp.cpp_available():
        raise BackendUnavailable(_NOT_BUILT)
    _require_licence()
    return getattr(cpp, name)


def _triton():
    """The Triton kernels are source code: release wheels leave them out (a GPU release would ship them compiled
    and encrypted like the C++ library), so their absence is a clear error, not an ImportError."""
    import importlib.util

    if importlib.util.find_spec("liquid_memory.ops.triton_scan") is None:
        raise BackendUnavailable("the triton backend is not part of this release build; use cpp or reference")
    from liquid_memory.ops import triton_scan

    return triton_scan


def _compiled_step(name: str) -> Callable[..., tuple[Tensor, Tensor]]:
    if name == "triton":
        return _triton().triton_liquid_step
    from liquid_memory.ops.cpp import cpp_available, cpp_liquid_step

    if not cpp_available():
        raise BackendUnavailable(_NOT_BUILT)
    return cpp_liquid_step


def _compiled_scan(name: str) -> Callable[..., tuple[Tensor, Tensor | None]]:
    if name == "cpp":
        from liquid_memory.ops.cpp import cpp_available, cpp_liquid_scan

        if not cpp_available():
            raise BackendUnavailable(_NOT_BUILT)
        return cpp_liquid_scan
    if name == "triton":
        return _triton().triton_liquid_scan
    from liquid_memory.artifacts import aoti_liquid_scan

    def aoti(q, k, v, log_a, *, precision_safe=None, **kwargs):
        return aoti_liquid_scan(q, k, v, log_a, **kwargs)

    return aoti


def _check_scan_inputs(q: Tensor, k: Tensor, v: Tensor, log_a: Tensor, initial_state: Tensor | None) -> None:
    if q.dim() != 4 or k.shape != q.shape or log_a.shape != q.shape or v.shape[:3] != q.shape[:3]:
        raise ValueError(
            "liquid_scan expects q, k, log_a of one shape [B, H, T, d] and v of shape [B, H, T, dv]; got "
            f"q {tuple(q.shape)}, k {tuple(k.shape)}, v {tuple(v.shape)}, log_a {tuple(log_a.shape)}"
        )
    if initial_state is not None and initial_state.shape != (*q.shape[:2], q.shape[3], v.shape[3]):
        raise ValueError(
            f"initial_state must be [B, H, d, dv] = {(*q.shape[:2], q.shape[3], v.shape[3])}, "
            f"got {tuple(initial_state.shape)}"
        )
