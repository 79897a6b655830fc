"""The layer's fast paths against their references: the fused read-out epilogue (cpp) against
``reference_readout`` and the float64 layer, the packed q/k/v GEMM with strided heads, inference vs autograd
paths, fp32/bf16, odd head sizes, padding masks and decode."""

from __future__ import annotations

import pytest
import torch

from liquid_memory import LiquidMemory
from liquid_memory.ops.dispatch import liquid_scan_readout, reference_readout
from tests.core.layer_reference import reference_layer
from tests.core.scan_cases import case_seed, scan_inputs
from tests.numerics import rel_err


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("with_norm", [True, False])
@pytest.mark.parametrize("length,dim", [(130, 32), (67, 20)])
def test_readout_epilogue_matches_reference(dtype, with_norm, length, dim, licensed):
    q, k, v, log_a = scan_inputs(1, 3, length, dim, dtype=dtype)
    weight = torch.rand(3 * dim, generator=torch.Generator().manual_seed(1)) + 0.5 if with_norm else None
    s0 = torch.randn(1, 3, dim, dim, generator=torch.Generator().manual_seed(2))
    kwargs = dict(norm_weight=weight, eps=3e-4, out_scale=0.37, initial_state=s0, output_final_state=True)
    got, state = liquid_scan_readout(q, k, v, log_a, backend="cpp", **kwargs)
    want, want_state = liquid_scan_readout(q, k, v, log_a, backend="naive", **kwargs)  # scan, then the torch read-out
    assert got.dtype == dtype and got.shape == q.shape
    assert rel_err(got, want) <= (1e-5 if dtype == torch.float32 else 1e-2)
    assert rel_err(state, want_state) <= 1e-5


def test_reference_readout_is_rmsnorm_times_weight():
    o = torch.randn(1, 2, 5, 4, dtype=torch.float64)
    w = torch.rand(8, dtype=torch.float64)
    want = o / torch.sqrt(o.pow(2).mean(-1, keepdim=True) + 1e-3) * w.view(2, 1, 4)
    assert rel_err(reference_readout(o, w, 1e-3, 1.0), want) < 1e-12
    assert torch.equal(reference_readout(o, None, 1e-3, 0.5), o * 0.5)


def _module(backend, embed_dim=32, heads=4, **kwargs) -> LiquidMemory:
    torch.manual_seed(0)
    module = LiquidMemory(embed_dim, heads, batch_first=True, backend=backend, **kwargs)
    with torch.no_grad():
        if module.out_norm is not None:
            module.out_norm.weight.uniform_(0.5, 1.5)
        if module.decay_rank is None:
            module.decay_proj.weight.normal_(0, 0.3)
        else:
            module.decay_proj.up.weight.normal_(0, 0.5)
    return module


CONFIGS = [  # embed_dim, heads, kwargs
    (32, 4, {}),
    (60, 3, {"out_norm": False}),  # head dim 20: padded rows in the kernels
    (32, 2, {"decay_rank": 4, "bias": False}),
]


@pytest.mark.parametrize("embed_dim,heads,kwargs", CONFIGS)
@pytest.mark.parametrize("padding", [False, True])
def test_inference_path_matches_float64_layer(backend, embed_dim, heads, kwargs, padding):
    module = _module(backend, embed_dim, heads, **kwargs).eval()
    x = torch.randn(2, 45, embed_dim, generator=torch.Generator().manual_seed(case_seed(embed_dim, heads, padding)))
    padded = None
    if padding:
        padded = torch.zeros(2, 45, dtype=torch.bool)
        padded[0, 40:] = True
        padded[1, :3] = True
    with torch.inference_mode():
        out, _ = module(x, x, x, is_causal=True, need_weights=False, key_padding_mask=padded)
    expected, _ = reference_layer(module, x, x, x, "causal", padded)
    assert rel_err(out, expected) < 1e-5


@pytest.mark.parametrize("embed_dim,heads,kwargs", CONFIGS)
def test_inference_and_autograd_paths_agree(embed_dim, heads, kwargs, licensed):
    module = _module("cpp", embed_dim, heads, **kwargs)
    x = torch.randn(1, 70, embed_dim, generator=torch.Generator().manual_seed(5))
    with torch.no_grad():
        fused, _ = module(x, x, x, is_causal=True, need_weights=False)
    composed, _ = module(x, x, x, is_causal=True, need_weights=False)
    assert composed.requires_grad
    assert rel_err(fused, composed) < 1e-6


def test_gradients_through_packed_projection_match_reference_backend(licensed):
    """cpp (strided heads in, [B, T, H, d] gradients out) against the chunked reference, every parameter."""
    grads = {}
    x = torch.randn(2, 75, 32, generator=torch.Generator().manual_seed(6))
    target = torch.randn(2, 75, 32, generator=torch.Generator().manual_seed(7))
    for backend in ("cpp", "chunked"):
        module = _module(backend)
        xg = x.clone().requires_grad_()
        out, _ = module(xg, xg, xg, is_causal=True, need_weights=False)
        (out * target).sum().backward()
        grads[backend] = {"x": xg.grad, **{n: p.grad for n, p in module.named_parameters()}}
    for name, want in grads["chunked"].items():
        assert rel_err(grads["cpp"][name], want) < 1e-5, name


def test_bf16_inference_close_to_fp32(backend):
    module = _module(backend).eval()
    x = torch.randn(1, 64, 32, generator=torch.Generator().manual_seed(8))
    with torch.inference_mode():
        want, _ = module(x, x, x, is_causal=True, need_weights=False)
        got, _ = module.to(torch.bfloat16)(x.bfloat16(), x.bfloat16(), x.bfloat16(), is_causal=True, need_weights=False)
    assert got.dtype == torch.bfloat16
    assert rel_err(got, want) < 3e-2


@pytest.mark.parametrize("rank", [None, 4])
def test_inference_decode_continues_the_prefill(backend, rank):
    module = _module(backend, decay_rank=rank).eval()
    x = torch.randn(2, 20, 32, generator=torch.Generator().manual_seed(9))
    with torch.inference_mode():
        full, _ = module(x, x, x, is_causal=True, need_weights=False)
        head = module.prefill(x[:, :13])
        tail = torch.stack([module.step(x[:, t]) for t in range(13, 20)], dim=1)
    assert rel_err(torch.cat([head, tail], dim=1), full) < 1e-5
