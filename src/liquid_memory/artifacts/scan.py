"""The ``aoti`` backend entry point: input checks the packages do not do themselves (docs/architecture.md §4)."""

from __future__ import annotations

import torch
from torch import Tensor

from liquid_memory.errors import ArtifactIncompatible, LiquidMemoryError

DTYPE_NAMES = {torch.float32: "float32", torch.bfloat16: "bfloat16"}


def _bad(msg: str, reason: str = "inputs") -> ArtifactIncompatible:
    return ArtifactIncompatible(f"aoti backend: {msg}", reason=reason,
                                remedy="use LM_BACKEND=cpp or reference for this call")  # fmt: skip


def _check(q: Tensor, k: Tensor, v: Tensor, log_a: Tensor, initial_state: Tensor | None) -> str:
    if q.dim() != 4 or not (q.shape == k.shape == v.shape == log_a.shape):
        raise _bad(f"q, k, v, log_a must share one [B, H, T, d] shape, got {[tuple(x.shape) for x in (q, k, v)]}")
    if any(x.device.type != "cpu" for x in (q, k, v, log_a)):
        raise _bad("artifacts run on CPU tensors only", "device")
    if q.dtype not in DTYPE_NAMES or k.dtype != q.dtype or v.dtype != q.dtype:
        raise _bad(f"q, k, v must all be float32 or bfloat16, got {q.dtype}/{k.dtype}/{v.dtype}", "dtype")
    if torch.is_grad_enabled() and any(x.requires_grad for x in (q, k, v, log_a)):
        raise _bad("artifacts are inference-only (no autograd); wrap in torch.no_grad()", "autograd")
    b, h, _, d = q.shape
    if initial_state is not None and tuple(initial_state.shape) != (b, h, d, d):
        raise _bad(f"initial_state must be [B, H, d, d] = {(b, h, d, d)}, got {tuple(initial_state.shape)}")
    return DTYPE_NAMES[q.dtype]


def aoti_liquid_scan(
    q: Tensor,
    k: Tensor,
    v: Tensor,
    log_a: Tensor,
    *,
    initial_state: Tensor | None = None,
    reverse: bool = False,
    output_final_state: bool = False,
) -> tuple[Tensor, Tensor | None]:
    """``liquid_scan`` through the licensed AOTInductor artifact (needs the ``kernel`` feature)."""
    from liquid_memory.artifacts.loader import get_runner

    dtype = _check(q, k, v, log_a, initial_state)
    b, h, t, d = q.shape
    runner, info = get_runner(dtype, d)
    if b > info.max_batch or h > info.max_heads or t > info.max_length:
        limits = f"{info.max_batch} / {info.max_heads} / {info.max_length}"
        raise _bad(f"batch {b} / heads {h} / length {t} exceed the artifact's limits {limits}")
    state0 = torch.zeros(b, h, d, d) if initial_state is None else initial_state.to(torch.float32)
    if t == 0:
        return q.new_empty(q.shape), (state0.clone() if output_final_state else None)
    xs = [q, k, v, log_a.to(torch.float32)]
    if reverse:
        xs = [x.flip(2) for x in xs]
    pad = (-t) % info.chunk_size  # zero k and log_a = 0 leave the state unchanged
    if pad:
        xs = [torch.nn.functional.pad(x, (0, 0, 0, pad)) for x in xs]
    with torch.no_grad():
        o, final = runner(*(x.contiguous() for x in xs), state0.contiguous())  # type: ignore[operator]
    o = o[:, :, :t]
    if reverse:
        o = o.flip(2)
    return o, (final if output_final_state else None)


def available(dtype: torch.dtype | None = None, head_dim: int | None = None) -> bool:
    """True if the distribution holds an artifact this machine can run (licence not checked here)."""
    from liquid_memory.artifacts.loader import _root, load_metadata, select

    try:
        meta = load_metadata(_root())
        if dtype is None or head_dim is None:
            for art in meta.artifacts:
                try:
                    select(meta, art.dtype, art.head_dim)
                    return True
                except ArtifactIncompatible:
                    continue
            return False
        select(meta, DTYPE_NAMES.get(dtype, str(dtype)), head_dim)
        return True
    except LiquidMemoryError:
        return False
