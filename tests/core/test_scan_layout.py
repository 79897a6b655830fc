"""The C++ kernels read q/k/v/log_a as strided views of a ``[B, T, 3E]``-style projection buffer and write
``[B, T, H, d]`` outputs: same values as contiguous inputs and as the float64 oracle, forward and backward."""

from __future__ import annotations

import pytest
import torch

from liquid_memory.ops.cpp import cpp_liquid_scan, heads_inner
from liquid_memory.ops.naive import naive_liquid_scan
from tests.core.scan_cases import case_seed
from tests.numerics import rel_err


def packed_inputs(B, H, T, d, dtype, seed, extra=0):
    """q, k, v as [B, H, T, d] views into one [B, T, 3·H·d + extra] buffer (what one fused GEMM makes), and a
    log_a view into a [B, T, H, d] tensor."""
    g = torch.Generator().manual_seed(seed)
    e = H * d
    buf = (torch.randn(B, T, 3 * e + extra, generator=g) / d**0.25).to(dtype)
    q, k, v = (buf[..., i * e : (i + 1) * e].view(B, T, H, d).transpose(1, 2) for i in range(3))
    la = -(torch.rand(B, T, H, d, generator=g) ** 4 * 5).transpose(1, 2)
    return buf, q, k, v, la


CASES = [  # B, H, T, d, reverse, init
    (2, 3, 130, 32, False, True),
    (1, 4, 65, 40, True, False),  # d not a multiple of 8: padded rows
    (2, 2, 1, 16, False, True),
    (1, 1, 77, 64, False, False),  # H = 1: no head stride to speak of
]


@pytest.mark.parametrize("B,H,T,d,reverse,init", CASES)
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_strided_forward_matches_contiguous_and_oracle(B, H, T, d, reverse, init, dtype, licensed):
    _, q, k, v, la = packed_inputs(B, H, T, d, dtype, case_seed(B, H, T, d, reverse, str(dtype)), extra=5)
    assert not q.is_contiguous()
    s0 = torch.randn(B, H, d, d) if init else None
    o, fs = cpp_liquid_scan(q, k, v, la, initial_state=s0, reverse=reverse, output_final_state=True)
    oc, fsc = cpp_liquid_scan(*(t.contiguous() for t in (q, k, v, la)), initial_state=s0, reverse=reverse,
                              output_final_state=True)  # fmt: skip
    assert torch.equal(o, oc) and torch.equal(fs, fsc)  # same arithmetic, only the addressing differs
    if heads_inner(q):
        assert o.transpose(1, 2).is_contiguous()  # [B, T, H, d] memory: heads merge with a free view
    on, fn = naive_liquid_scan(*(t.double() for t in (q, k, v, la)), reverse=reverse, output_final_state=True,
                               initial_state=None if s0 is None else s0.double())  # fmt: skip
    assert rel_err(o, on) <= (1e-5 if dtype == torch.float32 else 1e-2)
    assert rel_err(fs, fn) <= 1e-5


@pytest.mark.parametrize("B,H,T,d,reverse,init", CASES[:2])
def test_strided_gradients_match_float64_oracle(B, H, T, d, reverse, init, licensed):
    buf, *_ = packed_inputs(B, H, T, d, torch.float32, case_seed("grad", B, H, T, d))
    buf.requires_grad_()
    la_src = (-(torch.rand(B, T, H, d, generator=torch.Generator().manual_seed(3)) ** 4) * 5).requires_grad_()
    s0 = torch.randn(B, H, d, d) if init else None
    g = torch.Generator().manual_seed(4)
    go = torch.randn(B, H, T, d, generator=g, dtype=torch.float64)
    gf = torch.randn(B, H, d, d, generator=g, dtype=torch.float64)

    def loss(scan, dtype):
        e = H * d
        src = buf.to(dtype)
        q, k, v = (src[..., i * e : (i + 1) * e].view(B, T, H, d).transpose(1, 2) for i in range(3))
        la = la_src.to(dtype).transpose(1, 2)
        init_state = None if s0 is None else s0.to(dtype)
        o, fs = scan(q, k, v, la, initial_state=init_state, reverse=reverse, output_final_state=True)
        return (o.double() * go).sum() + (fs.double() * gf).sum()

    got = torch.autograd.grad(loss(cpp_liquid_scan, torch.float32), (buf, la_src))
    want = torch.autograd.grad(loss(naive_liquid_scan, torch.float64), (buf, la_src))
    for name, a, b in zip(("qkv buffer", "log_a"), got, want, strict=True):
        assert rel_err(a, b) <= 1e-5, name


def test_opcheck_with_strided_inputs(licensed):
    _, q, k, v, la = packed_inputs(1, 2, 20, 16, torch.float32, 11)
    torch.library.opcheck(torch.ops.liquid_memory.liquid_scan_fwd, (q, k, v, la, None, False, False))
    go = torch.randn(1, 20, 2, 16).transpose(1, 2)
    torch.library.opcheck(torch.ops.liquid_memory.liquid_scan_bwd, (q, k, v, la, None, go, None, False, False))
