"""The ``cpp`` backend: C++ CPU kernels (``csrc/``) for ``liquid_scan`` forward, backward and decode.

Loads ``liquid_memory._C`` (whose import registers the ops ``torch.ops.liquid_memory.*``) and adds
what torch needs to treat each op as one opaque node: fake (meta) kernels for tracing and
``torch.compile``, and autograd through the C++ chunked backward.

Ops (all CPU, fp32 accumulation and state; inputs fp32/bf16/fp16, log_a fp32 ≤ 0). Inputs may have any
strides with a contiguous last (channel) dim — e.g. ``[B, H, T, d]`` views of a ``[B, T, 3E]`` projection
buffer — and are read in place; outputs take ``[B, T, H, d]`` memory when ``q`` does (``heads_inner``):

- ``liquid_scan_fwd(q, k, v, log_a, initial_state?, reverse, precision_safe) -> (o, final_state)``
- ``liquid_scan_bwd(q, k, v, log_a, initial_state?, grad_o, grad_final_state?, reverse, precision_safe)
  -> (dq, dk, dv, dlog_a, dinitial_state)`` (recomputes the chunk-boundary states, no saved activations)
- ``liquid_scan_fwd_normed(q, k, v, log_a, initial_state?, reverse, precision_safe, norm_weight?, eps, out_scale)
  -> (o, final_state)``: inference only (no autograd), the forward with the layer's read-out (per-head RMSNorm
  times its weight, or a scale) applied to each output row before it is stored
- ``liquid_step_(q_t, k_t, v_t, log_a_t, state!) -> o_t``: one decode step, **updates ``state`` in place**
  (declared as a mutation in the schema, so torch.compile and functionalization handle it).
- ``liquid_scan_fwd_grouped(q, k, v, log_a, initial_state?, precision_safe) -> (o, final_state)``: inference only,
  ``G = H / Hkv`` query heads per KV head (``q`` ``[B, H, T, d]``, the rest ``[B, Hkv, T, d]``): each KV head's
  recurrence is computed once for its ``G`` queries instead of once per query head.
- ``hybrid_decode_(q, k, v, hidden, held_keys!, held_packed!, sink_keys?, sink_values?, state!, valid?, feature_q,
  feature_k, down, up, bias, beta, scaling, delta_min) -> y``: the linearized hybrid's whole one-token attention
  step once its window is full (``hf/decode_step.py``'s ``decode_core`` is its reference), fp32, no autograd;
  the held window and the state are updated in place.
- ``int8_linear(x, qweight, scale, bias?, portable=False) -> y``: weight-only int8 matmul for a few rows (decode,
  ``hf/weights.py``'s ``Int8Linear``): ``y = (x @ qweightᵀ) · scale + bias`` with fp32 accumulation, ``x`` ``[M, K]``
  fp32/bf16, ``qweight`` int8 ``[N, K]``, ``scale`` ``[N]`` fp32/bf16, ``y`` in ``x``'s dtype; no autograd.
  AVX-512 where the CPU has it, else (or with ``portable=True``, for tests) the generic vector path.

``precision_safe=True`` changes exactly one thing: the inter-chunk state recurrence
``S ← diag(exp(g_chunk)) S + K̃ᵀV`` (and, in backward, the state-gradient recurrence
``dS ← diag(exp(g_chunk)) dS + Q̃ᵀdO``) is done with compensated fp32 arithmetic (Kahan summation
plus the exact rounding error of the decay product via fma), so the state does not drift over very
long sequences. Intra-chunk sums (≤ 64 terms) stay plain fp32. ``None`` means auto: on above 64K tokens.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from liquid_memory.ops.chunked import resolve_precision_safe
from liquid_memory.ops.licence_hold import vouched

_OPS = "liquid_memory"
_registered = False


def _load() -> bool:
    """Whether this install has the kernel library; development builds import it now (registers the ops).

    Where the library comes from is ``liquid_memory.artifacts.native``'s business: a release build ships it
    only encrypted and loads it in ``_require`` once a licence granting ``kernel`` verified.
    """
    global _registered
    from liquid_memory.artifacts import native

    if not native.kernel_library_present():
        return False
    if not native.is_release_build():
        native.ensure_kernel_library()
        _register_python_side()
        _registered = True
    return True


def cpp_available() -> bool:
    """True when the C++ kernel library exists in this install (release builds: encrypted, needs a licence)."""
    return _AVAILABLE


def _require() -> Any:
    if not _AVAILABLE:
        raise RuntimeError(
            "the C++ extension liquid_memory._C is not built; run `pip install --no-build-isolation -e .` "
            "(or `python setup.py build_ext --inplace`) or use the chunked backend"
        )
    if not _registered or (_release() and not _vouched()):
        _licensed_load()
    return torch.ops.liquid_memory


def _vouched() -> bool:
    """A model forward's licence hold already checked the licence for a compiled op (``ops/licence_hold.py``);
    never while tracing (the wrapper's own check then stays in every call)."""
    return not torch.compiler.is_compiling() and vouched()


def _release() -> bool:
    from liquid_memory.licensing.trust import is_release_build

    return is_release_build()


@torch._dynamo.assume_constant_result
def _licensed_load() -> bool:
    """Release builds: licence check on every eager call, decrypt + load on the first (traced once)."""
    global _registered
    from liquid_memory.artifacts.native import ensure_kernel_library

    ensure_kernel_library()
    if not _registered:
        _register_python_side()
        _registered = True
    return True


def _register_python_side() -> None:
    @torch.library.register_fake(f"{_OPS}::liquid_scan_fwd")
    def _fwd_fake(q, k, v, log_a, initial_state, reverse, precision_safe):
        b, h, _, d = q.shape
        return empty_in_layout(q, q.dtype), q.new_empty((b, h, d, d), dtype=torch.float32)

    @torch.library.register_fake(f"{_OPS}::liquid_scan_bwd")
    def _bwd_fake(q, k, v, log_a, initial_state, grad_o, grad_final_state, reverse, precision_safe):
        b, h, _, d = q.shape
        return (
            empty_in_layout(q, q.dtype),
            empty_in_layout(q, q.dtype),
            empty_in_layout(q, q.dtype),
            empty_in_layout(q, torch.float32),
            q.new_empty((b, h, d, d), dtype=torch.float32),
        )

    @torch.library.register_fake(f"{_OPS}::liquid_scan_fwd_normed")
    def _fwd_normed_fake(q, k, v, log_a, initial_state, reverse, precision_safe, norm_weight, eps, out_scale):
        b, h, _, d = q.shape
        return empty_in_layout(q, q.dtype), q.new_empty((b, h, d, d), dtype=torch.float32)

    @torch.library.register_fake(f"{_OPS}::liquid_step_")
    def _step_fake(q, k, v, log_a, state):
        return torch.empty_like(q)

    @torch.library.register_fake(f"{_OPS}::liquid_scan_fwd_grouped")
    def _fwd_grouped_fake(q, k, v, log_a, initial_state, precision_safe):
        b, hkv, _, d = k.shape
        return empty_in_layout(q, q.dtype), q.new_empty((b, hkv, d, d), dtype=torch.float32)

    @torch.library.register_fake(f"{_OPS}::hybrid_decode_")
    def _hybrid_decode_fake(q, k, v, hidden, held_keys, held_packed, sink_keys, sink_values, state, valid, *rest):
        b, h, _, d = q.shape
        return q.new_empty((b, 1, h * d))

    @torch.library.register_fake(f"{_OPS}::int8_linear")
    def _int8_linear_fake(x, qweight, scale, bias, portable=False):
        return x.new_empty((x.shape[0], qweight.shape[0]))

    torch.library.register_autograd(
        f"{_OPS}::liquid_scan_fwd",
        scan_backward(lambda *args: torch.ops.liquid_memory.liquid_scan_bwd(*args)),
        setup_context=save_scan_context,
    )


def save_scan_context(ctx, inputs, output) -> None:
    """Autograd ``setup_context`` of a scan-forward op ``(q, k, v, log_a, initial_state, reverse, precision_safe)``."""
    q, k, v, log_a, initial_state, reverse, precision_safe = inputs
    ctx.save_for_backward(q, k, v, log_a, initial_state)
    ctx.reverse, ctx.precision_safe = reverse, precision_safe
    ctx.log_a_dtype = log_a.dtype
    ctx.init_dtype = None if initial_state is None else initial_state.dtype


def scan_backward(scan_bwd: Any) -> Any:
    """The autograd ``backward`` of a scan-forward op, running ``scan_bwd`` (the plain or the licence-checking
    C++ backward op, same signature) on what :func:`save_scan_context` saved."""

    def backward(ctx, grad_o, grad_final):
        q, k, v, log_a, initial_state = ctx.saved_tensors
        if grad_o is None:
            grad_o = torch.zeros_like(q)
        dq, dk, dv, dla, dinit = scan_bwd(q, k, v, log_a, initial_state, grad_o, grad_final, ctx.reverse,
                                          ctx.precision_safe)  # fmt: skip
        dinit = None if initial_state is None else dinit.to(ctx.init_dtype)
        return dq, dk, dv, dla.to(ctx.log_a_dtype), dinit, None, None

    return backward


def heads_inner(q: Tensor) -> bool:
    """``q`` keeps heads inside time (``[B, T, H, d]`` memory seen as ``[B, H, T, d]``). The kernels then
    return outputs and gradients in that layout too (csrc ``heads_inner``), so heads merge with a free view."""
    return q.shape[1] > 1 and q.shape[2] > 1 and q.stride(1) < q.stride(2)


def empty_in_layout(q: Tensor, dtype: torch.dtype) -> Tensor:
    """An empty ``[B, H, T, d]`` tensor in ``q``'s layout family: the kernels' output allocation, for fakes."""
    if not heads_inner(q):
        return q.new_empty(q.shape, dtype=dtype)
    b, h, t, d = q.shape
    return q.new_empty((b, t, h, d), dtype=dtype).permute(0, 2, 1, 3)


_AVAILABLE = _load()  # at import, so torch.compile never traces the registration


def cpp_liquid_scan(
    q: Tensor,
    k: Tensor,
    v: Tensor,
    log_a: Tensor,
    *,
    initial_state: Tensor | None = None,
    reverse: bool = False,
    output_final_state: bool = False,
    precision_safe: bool | None = False,
) -> tuple[Tensor, Tensor | None]:
    """``liquid_scan`` on the C++ kernels; same contract as ``naive_liquid_scan`` (dk == dv).

    Differentiable in q, k, v, log_a and initial_state. ``o`` is in q's dtype, the final state fp32.
    """
    ops = _require()
    if v.shape != q.shape:
        raise ValueError(f"the cpp backend needs dk == dv (v of shape {tuple(q.shape)}); got v {tuple(v.shape)}")
    if log_a.dtype != torch.float32:
        log_a = log_a.float()
    if initial_state is not None and initial_state.dtype != torch.float32:
        initial_state = initial_state.float()
    safe = resolve_precision_safe(precision_safe, q.shape[2])
    o, final_state = ops.liquid_scan_fwd(q, k, v, log_a, initial_state, reverse, safe)
    return o, (final_state if output_final_state else None)


def cpp_liquid_scan_readout(
    q: Tensor,
    k: Tensor,
    v: Tensor,
    log_a: Tensor,
    *,
    norm_weight: Tensor | None,
    eps: float,
    out_scale: float,
    initial_state: Tensor | None = None,
    output_final_state: bool = False,
    precision_safe: bool | None = False,
) -> tuple[Tensor, Tensor | None]:
    """Inference only (no autograd): the causal scan with the layer's read-out in its epilogue, per output row
    ``o·rsqrt(mean(o²) + eps)·w_h`` (``norm_weight`` ``[H·d]``) or ``out_scale·o`` — no extra pass over ``o``."""
    ops = _require()
    if log_a.dtype != torch.float32:
        log_a = log_a.float()
    if initial_state is not None and initial_state.dtype != torch.float32:
        initial_state = initial_state.float()
    safe = resolve_precision_safe(precision_safe, q.shape[2])
    o, final_state = ops.liquid_scan_fwd_normed(
        q, k, v, log_a, initial_state, False, safe, norm_weight, float(eps), float(out_scale)
    )
    return o, (final_state if output_final_state else None)


def cpp_liquid_step(q_t: Tensor, k_t: Tensor, v_t: Tensor, log_a_t: Tensor, state: Tensor) -> tuple[Tensor, Tensor]:
    """One decode step in O(d²) per head: ``S ← diag(exp(log_a_t)) S + k_t v_tᵀ``, ``o_t = Sᵀ q_t``.

    Inputs ``[B, H, d]``; ``state`` ``[B, H, d, d]`` contiguous fp32 is **updated in place** and returned
    as ``new_state`` (the same tensor), so a decode loop allocates nothing for the state. No autograd.
    """
    ops = _require()
    o_t = ops.liquid_step_(q_t, k_t, v_t, log_a_t, state)
    return o_t, state


def cpp_liquid_scan_grouped(
    q: Tensor, k: Tensor, v: Tensor, log_a: Tensor, *, initial_state: Tensor | None = None,
    precision_safe: bool | None = None,
) -> tuple[Tensor, Tensor]:  # fmt: skip
    """Causal scan, ``G = H / Hkv`` query heads per KV head: ``(o [B, H, T, d], final state [B, Hkv, d, d])``.
    No autograd (inference: the linearized hybrid's prefill)."""
    ops = _require()
    safe = resolve_precision_safe(precision_safe, q.shape[2])
    return ops.liquid_scan_fwd_grouped(q, k, v, log_a, initial_state, safe)


def cpp_hybrid_decode(
    q: Tensor, k: Tensor, v: Tensor, hidden: Tensor, held_keys: Tensor, held_packed: Tensor,
    sink_keys: Tensor | None, sink_values: Tensor | None, state: Tensor, valid: Tensor | None,
    feature_q: Tensor, feature_k: Tensor, down: Tensor, up: Tensor, bias: Tensor, beta: Tensor,
    scaling: float, delta_min: float,
) -> Tensor:  # fmt: skip
    """The hybrid's one-token attention step in one op (``hf/decode_step.py``): ``y [B, 1, H·d]``.

    fp32 throughout; ``held_keys`` ``[B, Hkv, W-1, d]``, ``held_packed`` ``[B, Hkv, W-1, 3d]`` and ``state``
    ``[B, Hkv, 2d, 2d]`` (contiguous) are **updated in place**: the window moves by one, key 0 enters the state."""
    ops = _require()
    return ops.hybrid_decode_(
        q, k, v, hidden, held_keys, held_packed, sink_keys, sink_values, state, valid, feature_q, feature_k, down,
        up, bias, beta, float(scaling), float(delta_min),
    )  # fmt: skip


def cpp_int8_linear(x: Tensor, qweight: Tensor, scale: Tensor, bias: Tensor | None) -> Tensor:
    """``(x @ qweightᵀ) · scale (+ bias)`` for ``x`` ``[M, K]`` fp32/bf16 (few rows: decode), int8 ``qweight``
    ``[N, K]`` (contiguous), per-row ``scale`` ``[N]`` fp32/bf16: ``[M, N]`` in ``x``'s dtype, fp32 accumulation."""
    return _require().int8_linear(x, qweight, scale, bias)
