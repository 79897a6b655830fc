"""``torch.library.opcheck`` on every C++ custom op: schema, fake kernel, autograd registration."""

from __future__ import annotations

import pytest
import torch

from liquid_memory.ops.cpp import cpp_available


def test_extension_is_built():
    assert cpp_available(), "liquid_memory._C is not built: pip install --no-build-isolation -e ."


def _inputs(dtype, T=70, d=32, grad=True):
    g = torch.Generator().manual_seed(T + d)
    q, k, v = (torch.randn(2, 2, T, d, generator=g).to(dtype).requires_grad_(grad) for _ in range(3))
    la = (-torch.rand(2, 2, T, d, generator=g)).requires_grad_(grad)
    s0 = torch.randn(2, 2, d, d, generator=g).requires_grad_(grad)
    return q, k, v, la, s0


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("with_init,reverse,safe", [(False, False, False), (True, True, True), (True, False, False)])
def test_opcheck_scan_forward(dtype, with_init, reverse, safe):
    q, k, v, la, s0 = _inputs(dtype)
    torch.library.opcheck(
        torch.ops.liquid_memory.liquid_scan_fwd, (q, k, v, la, s0 if with_init else None, reverse, safe)
    )


@pytest.mark.parametrize("with_final_grad", [False, True])
def test_opcheck_scan_backward(with_final_grad):
    q, k, v, la, s0 = _inputs(torch.float32, grad=False)
    go = torch.randn_like(q)
    gf = torch.randn_like(s0) if with_final_grad else None
    torch.library.opcheck(torch.ops.liquid_memory.liquid_scan_bwd, (q, k, v, la, s0, go, gf, False, False))


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_opcheck_step(dtype):
    q, k, v, la, s0 = _inputs(dtype, T=1, grad=False)
    state = s0.clone()
    torch.library.opcheck(
        torch.ops.liquid_memory.liquid_step_, (q[:, :, 0], k[:, :, 0], v[:, :, 0], la[:, :, 0], state)
    )


@pytest.mark.parametrize("sinks", [0, 2])
def test_opcheck_hybrid_decode(sinks):
    """The hybrid's one-token step: three in-place tensors (window keys, [v | log a], state) declared in the schema."""
    g = torch.Generator().manual_seed(sinks)
    b, h, hkv, d, w, hid, rank = 2, 4, 2, 8, 5, 16, 4

    def r(*shape):
        return torch.randn(*shape, generator=g)

    sink = (r(b, hkv, sinks, d), r(b, hkv, sinks, d)) if sinks else (None, None)
    valid = torch.ones(b, w, dtype=torch.bool)
    valid[0, 0] = False
    args = (r(b, h, 1, d), r(b, hkv, 1, d), r(b, hkv, 1, d), r(b, 1, hid), r(b, hkv, w - 1, d),
            torch.cat([r(b, hkv, w - 1, d), -r(b, hkv, w - 1, 2 * d).abs()], -1), *sink,
            r(b, hkv, 2 * d, 2 * d).abs(), valid, r(h, d, d), r(hkv, d, d), r(rank, hid), r(hkv * 2 * d, rank),
            r(hkv * 2 * d), r(h), d**-0.5, 1e-6)  # fmt: skip
    torch.library.opcheck(torch.ops.liquid_memory.hybrid_decode_, args)


def test_opcheck_scan_forward_grouped():
    q, k, v, la, s0 = _inputs(torch.float32, grad=False)
    q6 = torch.cat([q, q.flip(2), q * 0.5], 1)  # 6 query heads on 2 KV heads
    torch.library.opcheck(torch.ops.liquid_memory.liquid_scan_fwd_grouped, (q6, k, v, la, s0, False))


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_opcheck_int8_linear(dtype):
    g = torch.Generator().manual_seed(9)
    x = torch.randn(3, 40, generator=g).to(dtype)
    q = torch.randint(-127, 128, (24, 40), generator=g, dtype=torch.int8)
    scale = (torch.rand(24, generator=g) * 0.01).to(torch.bfloat16)
    torch.library.opcheck(torch.ops.liquid_memory.int8_linear, (x, q, scale, torch.randn(24, generator=g), False))
    torch.library.opcheck(torch.ops.liquid_memory.int8_linear, (x, q, scale, None, True))
