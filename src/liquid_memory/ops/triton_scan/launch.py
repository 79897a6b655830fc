"""Launchers for the Triton kernels and the ``torch.autograd.Function`` that ties forward to backward.

Imported lazily by ``liquid_memory.ops.triton_scan`` because importing it imports ``triton`` and decorates
the kernels: ``TRITON_INTERPRET=1`` must already be set at that point to run them on CPU tensors.
"""

from __future__ import annotations

import torch
import triton
from torch import Tensor
from triton.runtime.interpreter import InterpretedFunction

from liquid_memory.ops.triton_scan import kernels

INTERPRETED = isinstance(kernels.chunk_fwd_kernel, InterpretedFunction)
if INTERPRETED != isinstance(triton.language.standard.sum, InterpretedFunction):
    # Triton fixes interpreter-vs-compiler per function when it is decorated; its own library (tl.sum,
    # tl.cumsum) is decorated when triton is first imported — which `import torch._dynamo` already does.
    raise ImportError(
        "TRITON_INTERPRET changed after triton was imported (importing torch._dynamo or liquid_memory imports "
        "triton), so the kernels and triton's own library disagree on interpreter mode; set TRITON_INTERPRET "
        "in the environment before Python starts (tests: tests/core/conftest.py sets it)"
    )
SUB_CHUNK = 16  # BC: tl.dot needs every dimension ≥ 16 on a GPU
MAX_BLOCK_V = 64  # value columns per program: bounds the fp32 state tile [BK, BV] held in registers


def _block(dim: int) -> int:
    """Register tile width for a head dimension: the next power of two, at least 16."""
    return max(16, triton.next_power_of_2(dim))


def launch_config(dk: int, dv: int) -> tuple[int, int]:
    """``(BV, num_warps)`` for head dims ``dk``/``dv``, chosen from ``gpu_compile`` reports (no GPU timings):
    8 warps from d = 64 removed the register spills of the chunk kernels at d = 64 on sm_80, and 32 value
    columns per program at d = 128 halved them there."""
    block_k = _block(dk)
    block_v = min(_block(dv), MAX_BLOCK_V if block_k <= 64 else min(MAX_BLOCK_V, 32))
    return block_v, (4 if block_k <= 32 else 8)


def _geometry(q: Tensor, v: Tensor, chunk_size: int) -> dict:
    batch, heads, length, dk = q.shape
    dv = v.shape[-1]
    block_v, num_warps = launch_config(dk, dv)
    return dict(
        bh=batch * heads, T=length, NT=max(1, triton.cdiv(length, chunk_size)), K=dk, V=dv,
        BT=chunk_size, BK=_block(dk), BV=block_v, NV=triton.cdiv(dv, block_v), num_warps=num_warps,
    )  # fmt: skip


def chunk_cumsum(log_a: Tensor, geo: dict) -> Tensor:
    """Chunk-local cumulative log-decay, fp32, ``[B*H, NT*BT, d]`` (padded rows repeat the chunk's last value)."""
    g = torch.empty((geo["bh"], geo["NT"] * geo["BT"], geo["K"]), dtype=torch.float32, device=log_a.device)
    kernels.chunk_cumsum_kernel[(geo["bh"], geo["NT"])](
        log_a, g, geo["T"], geo["NT"], K=geo["K"], BT=geo["BT"], BK=geo["BK"], num_warps=geo["num_warps"]
    )
    return g


def scan_forward(
    q: Tensor, k: Tensor, v: Tensor, g: Tensor, h0: Tensor | None, geo: dict, *, store_states: bool, safe: bool
) -> tuple[Tensor, Tensor, Tensor | None]:
    """Returns ``(o in q's dtype, final state fp32, entering state per chunk fp32 or None)``."""
    bh, K, V, NT = geo["bh"], geo["K"], geo["V"], geo["NT"]
    o = torch.empty(v.shape, dtype=q.dtype, device=q.device)
    ht = torch.empty((bh, K, V), dtype=torch.float32, device=q.device)
    hs = torch.empty((bh, NT, K, V) if store_states else (1,), dtype=torch.float32, device=q.device)
    kernels.chunk_fwd_kernel[(bh, geo["NV"])](
        q, k, v, g, ht if h0 is None else h0, o, hs, ht, geo["T"], NT,
        K=K, V=V, BT=geo["BT"], BC=SUB_CHUNK, BK=geo["BK"], BV=geo["BV"],
        HAS_H0=h0 is not None, STORE_HS=store_states, SAFE=safe, num_warps=geo["num_warps"],
    )  # fmt: skip
    return o, ht, (hs if store_states else None)


def scan_backward(
    q: Tensor, k: Tensor, v: Tensor, g: Tensor, hs: Tensor, ht: Tensor, do: Tensor, dht: Tensor | None,
    geo: dict, *, safe: bool,
) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:  # fmt: skip
    """Returns fp32 ``(dq, dk, dv, dlog_a, dh0)``."""
    bh, K, V, NT, T = geo["bh"], geo["K"], geo["V"], geo["NT"], geo["T"]
    dq_parts = torch.empty((geo["NV"], *q.shape), dtype=torch.float32, device=q.device)
    dk_parts = torch.empty_like(dq_parts)
    dv = torch.empty_like(v, dtype=torch.float32)
    dh0 = torch.empty((bh, K, V), dtype=torch.float32, device=q.device)
    kernels.chunk_bwd_kernel[(bh, geo["NV"])](
        q, k, v, g, hs, do, dh0 if dht is None else dht, dq_parts, dk_parts, dv, dh0, T, NT,
        K=K, V=V, BT=geo["BT"], BC=SUB_CHUNK, BK=geo["BK"], BV=geo["BV"], HAS_DHT=dht is not None, SAFE=safe,
        num_warps=geo["num_warps"],
    )  # fmt: skip
    dq, dk = dq_parts.sum(0), dk_parts.sum(0)  # one partial per block of value columns
    dla = torch.empty_like(dq)
    kernels.dlog_a_kernel[(bh,)](
        q, k, dq, dk, ht, ht if dht is None else dht, dla, T, NT,
        K=K, V=V, BT=geo["BT"], BK=geo["BK"], BV=geo["BV"], HAS_DHT=dht is not None, num_warps=geo["num_warps"],
    )  # fmt: skip
    return dq, dk, dv, dla, dh0


class TritonLiquidScan(torch.autograd.Function):
    """Forward-direction scan on contiguous ``[B, H, T, d]`` inputs; returns ``(o, final_state)``."""

    @staticmethod
    def forward(ctx, q, k, v, log_a, h0, chunk_size: int, safe: bool):
        geo = _geometry(q, v, chunk_size)
        g = chunk_cumsum(log_a, geo)
        needs_grad = any(ctx.needs_input_grad[:5])
        o, ht, hs = scan_forward(q, k, v, g, h0, geo, store_states=needs_grad, safe=safe)
        batch, heads = q.shape[:2]
        ht = ht.view(batch, heads, geo["K"], geo["V"])
        if needs_grad:
            ctx.save_for_backward(q, k, v, g, hs, ht)
            ctx.geo, ctx.safe, ctx.has_h0 = geo, safe, h0 is not None
        ctx.set_materialize_grads(False)
        return o, ht

    @staticmethod
    def backward(ctx, do, dht):
        q, k, v, g, hs, ht = ctx.saved_tensors
        if do is None:
            do = torch.zeros_like(v)
        dq, dk, dv, dla, dh0 = scan_backward(
            q, k, v, g, hs, ht, do.contiguous(), None if dht is None else dht.contiguous(), ctx.geo, safe=ctx.safe
        )
        dh0 = dh0.view(ht.shape) if ctx.has_h0 else None
        return dq.to(q.dtype), dk.to(k.dtype), dv.to(v.dtype), dla, dh0, None, None


def step(q_t: Tensor, k_t: Tensor, v_t: Tensor, log_a_t: Tensor, state: Tensor) -> tuple[Tensor, Tensor]:
    """Launch the decode kernel on contiguous ``[B, H, d]`` inputs and a fp32 ``[B, H, d, dv]`` state."""
    dk, dv = q_t.shape[-1], v_t.shape[-1]
    o_t = torch.empty(v_t.shape, dtype=q_t.dtype, device=q_t.device)
    new_state = torch.empty_like(state)
    block_v, num_warps = launch_config(dk, dv)
    kernels.step_kernel[(q_t.shape[0] * q_t.shape[1], triton.cdiv(dv, block_v))](
        q_t, k_t, v_t, log_a_t, state, o_t, new_state, K=dk, V=dv, BK=_block(dk), BV=block_v, num_warps=num_warps
    )
    return o_t, new_state
