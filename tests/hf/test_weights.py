"""Serving weight formats (hf/weights.py) against the fp32 model: logits within a stated tolerance, decode ==
prefill, a constant state, the tied table stored once, typed errors for an unknown format."""

from __future__ import annotations

import copy

import pytest
import torch

from liquid_memory.hf import LiquidHybridCache, PatchError, patch_model
from liquid_memory.hf.weights import Int8Linear, convert_weights, quantize_int8, weight_bytes
from tests.hf.hf_models import perturb_liquid, tiny_model
from tests.numerics import rel_err

# relative error of the logits against fp32 (Frobenius norm over a batch of sequences): bf16 rounds weights and
# matmul inputs to 8 mantissa bits (measured 0.3 %), int8 adds per-channel weight rounding (measured 0.7 %)
TOLERANCE = {"bf16": 1e-2, "int8": 3e-2}


def _hybrid(arch="llama", backend="chunked"):
    model = patch_model(tiny_model(arch), window=4, sinks=2, backend=backend)
    perturb_liquid(model)
    return model


def _tied(model):
    """The tiny models have separate heads; tie them as SmolLM2 does."""
    model.lm_head.weight = model.model.embed_tokens.weight
    return model


@pytest.mark.parametrize(
    ("weights", "backend"),
    [("bf16", "chunked"), ("int8", "chunked"), ("int8", "cpp")],
    ids=["bf16", "int8", "int8-cpp"],
)
@pytest.mark.parametrize("arch", ["llama", "qwen2"])
def test_logits_close_to_fp32_and_decode_equals_prefill(weights, backend, arch, request):
    """``int8-cpp``: the licensed kernels, so the int8 decode rows run the C++ ``int8_linear`` op (the patched
    layers' backend is the converted linears' too); ``int8``: the pure-PyTorch path, torch's int8 kernel."""
    if backend == "cpp":
        request.getfixturevalue("licensed")
    base = _tied(_hybrid(arch, backend))
    ids = torch.randint(3, 61, (2, 24), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        reference = base(ids, use_cache=False).logits
        model = convert_weights(copy.deepcopy(base), weights)
        full = model(ids, use_cache=False).logits
        cache, parts, sizes = LiquidHybridCache(model), [], []
        parts.append(model(ids[:, :18], past_key_values=cache, use_cache=True).logits)
        for t in range(18, 24):
            parts.append(model(ids[:, t : t + 1], past_key_values=cache, use_cache=True).logits)
            sizes.append(cache.nbytes())
    assert torch.isfinite(full).all()
    assert rel_err(full, reference) < TOLERANCE[weights]
    # int8: prefill uses a bf16 GEMM of the dequantised weight, decode an int8 GEMV: same weights, other rounding
    assert rel_err(torch.cat(parts, 1), full) < (1e-2 if weights == "int8" else 1e-5)
    assert len(set(sizes)) == 1


def test_int8_rows_round_trip_and_tied_table_is_stored_once():
    w = torch.randn(40, 32) * 0.1
    q, scale = quantize_int8(w)
    assert q.dtype == torch.int8 and q.abs().max() <= 127 and scale.dtype == torch.bfloat16
    assert rel_err(q.float() * scale.float()[:, None], w) < 1e-2
    model = _tied(_hybrid())
    fp32_bytes = weight_bytes(model)
    convert_weights(model, "int8")
    assert isinstance(model.lm_head, Int8Linear)
    assert model.model.embed_tokens.head is model.lm_head  # one int8 table for the embedding and the head
    assert weight_bytes(model) < 0.45 * fp32_bytes
    ids = torch.tensor([[5, 7, 9]])
    emb = model.model.embed_tokens(ids)
    head = model.lm_head
    assert rel_err(emb, (head.qweight.float() * head.scale.float()[:, None])[ids]) < 1e-6


@pytest.mark.parametrize("backend", ["reference", None])
def test_the_original_model_converts_too(backend, licensed):
    """An unpatched model's int8 linears take ``backend`` (``None``: the licensed C++ op; 12 rows ≤ SMALL_BATCH_ROWS
    go through an int8 GEMV)."""
    base = _tied(tiny_model())
    ids = torch.randint(3, 61, (1, 12), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        model = convert_weights(copy.deepcopy(base), "int8", backend=backend)
        assert {m.backend for m in model.modules() if isinstance(m, Int8Linear)} == {backend}
        assert rel_err(model(ids).logits, base(ids).logits) < TOLERANCE["int8"]


def test_unknown_format_is_a_typed_error():
    with pytest.raises(PatchError, match="unknown weight format") as info:
        convert_weights(tiny_model(), "int3")
    assert info.value.code == "LM703"
