"""Fused int8 rows (hf/weights.py's ``fuse_rows``, ``FusedGateUpMLP``, the attention's ``qkv_proj``) against the
same model run unfused: one matmul over concatenated rows gives the rows' own numbers (int8 scales are per output
row), so logits agree to fp32 summation order, in prefill and decode, on the C++ op and torch's int8 kernel; the
one-op RMSNorm against the model's own."""

from __future__ import annotations

import copy

import pytest
import torch

import liquid_memory.hf.weights as weights
from liquid_memory.hf import LiquidHybridCache, patch_model
from liquid_memory.hf.weights import (
    FusedGateUpMLP,
    Int8Linear,
    OneOpRMSNorm,
    convert_weights,
    fuse_rows,
    weight_bytes,
)
from tests.hf.hf_models import perturb_liquid, tiny_model
from tests.numerics import rel_err

FUSED_TOLERANCE = 1e-5  # measured 0: each output row is computed alone, fused or not


def _hybrid(arch: str, backend: str | None):
    model = patch_model(tiny_model(arch), window=4, sinks=2, backend=backend)
    perturb_liquid(model)
    return model


def _unfused(model):
    """``convert_weights`` with the fusion switched off: the plain reference of the fused model."""
    original, weights.fuse_int8_rows = weights.fuse_int8_rows, lambda model: None
    try:
        return convert_weights(model, "int8")
    finally:
        weights.fuse_int8_rows = original


def _run(model, ids, prefill: int):
    """Full-sequence logits, then a prefill of ``prefill`` tokens and one-token decode steps."""
    with torch.no_grad():
        full = model(ids, use_cache=False).logits
        cache = LiquidHybridCache(model)
        parts = [model(ids[:, :prefill], past_key_values=cache, use_cache=True).logits]
        for t in range(prefill, ids.shape[1]):
            parts.append(model(ids[:, t : t + 1], past_key_values=cache, use_cache=True).logits)
    return full, torch.cat(parts, 1)


@pytest.mark.parametrize("backend", [None, "chunked"], ids=["cpp", "reference"])
@pytest.mark.parametrize("arch", ["llama", "qwen2"])  # qwen2: q, k, v carry biases (fused too)
def test_fused_model_equals_unfused(arch, backend, licensed):
    base = _hybrid(arch, backend)
    fused, plain = convert_weights(copy.deepcopy(base), "int8"), _unfused(copy.deepcopy(base))
    attn = fused.model.layers[0].self_attn
    assert isinstance(attn.qkv_proj, Int8Linear) and isinstance(fused.model.layers[0].mlp, FusedGateUpMLP)
    assert plain.model.layers[0].self_attn.qkv_proj is None
    assert (attn.qkv_proj.bias is not None) == (arch == "qwen2")
    ids = torch.randint(3, 61, (2, 14), generator=torch.Generator().manual_seed(0))
    full_f, steps_f = _run(fused, ids, 9)
    full_p, steps_p = _run(plain, ids, 9)
    assert torch.isfinite(steps_f).all()
    assert rel_err(full_f, full_p) < FUSED_TOLERANCE  # 2 × 14 rows > 16: prefill runs the unfused GEMMs
    assert rel_err(steps_f[:, 9:], steps_p[:, 9:]) < FUSED_TOLERANCE  # decode: the fused rows
    with torch.no_grad():
        reference = base(ids, use_cache=False).logits
    assert rel_err(steps_f, reference) < 3e-2  # int8 against fp32, as tests/hf/test_weights.py


def test_fused_rows_are_views_and_equal_each_part(licensed):
    """The separate modules stay as views of the fused rows (no second copy: weight bytes unchanged); the fused
    matmul equals the parts side by side, with the C++ op and with torch's int8 kernel, NaN rows included."""
    gen = torch.Generator().manual_seed(2)
    parts = []
    for n in (24, 8, 8):
        linear = torch.nn.Linear(32, n)
        with torch.no_grad():
            linear.weight.copy_(torch.randn(n, 32, generator=gen) * 0.1)
        parts.append(Int8Linear(linear))
    fused, views = fuse_rows(parts)
    assert fused.qweight.shape == (40, 32)
    assert all(v.qweight.untyped_storage().data_ptr() == fused.qweight.untyped_storage().data_ptr() for v in views)
    assert weight_bytes(torch.nn.ModuleList([fused, *views])) == weight_bytes(fused)
    x = torch.randn(3, 32, generator=gen)
    x[2, 5] = float("nan")
    for backend in (None, "reference"):
        for module in (fused, *views, *parts):
            module.backend = backend
        with torch.no_grad():
            together, apart = fused(x), torch.cat([p(x) for p in parts], -1)
            torch.testing.assert_close(torch.cat([v(x) for v in views], -1), apart, rtol=0, atol=0, equal_nan=True)
        assert torch.isnan(together[2]).all()
        assert rel_err(together[:2], apart[:2]) < FUSED_TOLERANCE


def test_rows_of_other_inputs_or_mixed_biases_are_not_fused():
    a, b = Int8Linear(torch.nn.Linear(16, 8)), Int8Linear(torch.nn.Linear(16, 8, bias=False))
    assert fuse_rows([a, b]) is None
    assert fuse_rows([a, Int8Linear(torch.nn.Linear(12, 8))]) is None


def test_fused_mlp_forward_equals_its_reference(licensed):
    """``FusedGateUpMLP``: decode rows through the fused matmul, prefill rows through the parts, both equal to the
    unfused MLP; an unpatched model converts its MLPs too (its attention keeps q, k, v apart)."""
    model = convert_weights(tiny_model(), "int8")
    assert not hasattr(model.model.layers[0].self_attn, "qkv_proj")
    mlp = model.model.layers[0].mlp
    assert isinstance(mlp, FusedGateUpMLP)
    gen = torch.Generator().manual_seed(3)
    for rows in (1, 16, 17):
        x = torch.randn(1, rows, 32, generator=gen)
        with torch.no_grad():
            assert rel_err(mlp(x), mlp.reference_forward(x)) < FUSED_TOLERANCE


@pytest.mark.parametrize("arch", ["llama", "mistral", "qwen2"])
def test_one_op_norms_equal_the_model_formula(arch):
    """``OneOpRMSNorm`` (torch's rms_norm, fp32 inference) against HF's own module and its reference formula;
    every decoder norm and the final one are swapped, their weights shared."""
    base = tiny_model(arch)
    original = base.model.layers[0].input_layernorm
    with torch.no_grad():
        original.weight.uniform_(0.5, 1.5)
    model = convert_weights(base, "bf16")
    norms = [m for m in model.modules() if isinstance(m, OneOpRMSNorm)]
    assert len(norms) == 2 * len(model.model.layers) + 1
    norm = model.model.layers[0].input_layernorm
    assert norm.weight is original.weight
    x = torch.randn(2, 5, 32, generator=torch.Generator().manual_seed(4)) * 3
    x[1, 2, 7] = float("nan")
    with torch.no_grad():
        fast, hf = norm(x), original(x)
    assert torch.isnan(fast[1, 2]).all() and torch.isfinite(fast[0]).all()
    assert rel_err(fast[0], hf[0]) < 1e-6 and rel_err(fast[0], norm.reference_forward(x)[0]) < 1e-6
    graded = norm(x[:1])  # autograd: the reference formula runs
    assert graded.requires_grad and rel_err(graded, hf[:1]) < 1e-6
