"""The one-token decode step (hf/decode_step.py) against the general path, in float64: same logits, same state."""

from __future__ import annotations

import pytest
import torch

import liquid_memory.hf.attention as attention
import liquid_memory.hf.decode_step as decode_step
from liquid_memory.hf import LiquidHybridCache, patch_model, set_mode
from tests.hf.hf_models import perturb_liquid, tiny_model
from tests.numerics import rel_err


def _decode(model, ids, mask, first, fast: bool, monkeypatch, decode_mode: str | None = None):
    """Prefill ``first`` tokens, then one token at a time (in ``decode_mode`` if given); ``(logits, cache sizes,
    fast steps taken)``."""
    taken = []
    real = attention.fast_decode_ready

    def ready(*args):
        ok = fast and real(*args)
        taken.append(ok)
        return ok

    monkeypatch.setattr(attention, "fast_decode_ready", ready)
    cache, parts, sizes = LiquidHybridCache(model), [], []
    position = (mask.cumsum(-1) - 1).clamp_min(0)
    with torch.no_grad():
        for lo, hi in [(0, first)] + [(t, t + 1) for t in range(first, ids.shape[1])]:
            out = model(ids[:, lo:hi], attention_mask=mask[:, :hi], position_ids=position[:, lo:hi],
                        past_key_values=cache, use_cache=True)  # fmt: skip
            parts.append(out.logits)
            sizes.append(cache.nbytes())
            if decode_mode is not None:
                set_mode(model, decode_mode)
    return torch.cat(parts, 1), sizes[1:], sum(taken)


@pytest.mark.parametrize(
    ("window", "sinks", "padded", "per_query_mix"),
    [(4, 0, False, False), (4, 2, False, False), (3, 2, True, False), (5, 3, True, False), (4, 2, True, True)],
)
def test_fast_decode_equals_general_path_float64(window, sinks, padded, per_query_mix, monkeypatch):
    """``per_query_mix``: the step reads β of its own query (``mix_scale`` returns ``[B, H, 1]``)."""
    model = patch_model(tiny_model("llama", dtype=torch.float64), window=window, backend="naive", sinks=sinks,
                        per_query_mix=per_query_mix)  # fmt: skip
    perturb_liquid(model)
    ids = torch.randint(3, 61, (2, 16), generator=torch.Generator().manual_seed(11))
    mask = torch.ones_like(ids)
    if padded:
        mask[0, :5] = 0  # left padding: row 0's sinks and window hold padded positions for a while
    fast, sizes, steps = _decode(model, ids, mask, 6, True, monkeypatch)
    general, _, none = _decode(model, ids, mask, 6, False, monkeypatch)
    full = model(ids, attention_mask=mask, position_ids=(mask.cumsum(-1) - 1).clamp_min(0), use_cache=False).logits
    assert steps > 0 and none == 0
    assert rel_err(fast, general) < 1e-12
    assert rel_err(fast[mask.bool()], full[mask.bool()]) < 1e-12  # decode == prefill (real tokens)
    assert len(set(sizes)) == 1  # the state stays constant


def test_fast_decode_float32_cpp_backend_matches_reference(monkeypatch, licensed):
    """The licensed C++ step (one op per layer, updating the window and state in place) and the reference step
    give the same logits."""
    model = patch_model(tiny_model("qwen2"), window=4, sinks=2)
    perturb_liquid(model)
    ids = torch.randint(3, 61, (1, 14), generator=torch.Generator().manual_seed(12))
    mask = torch.ones_like(ids)
    compiled = []
    real = decode_step.hybrid_decode_kernel

    def kernel(*args, **kwargs):
        found = real(*args, **kwargs)
        compiled.append(found is not None)
        return found

    monkeypatch.setattr(decode_step, "hybrid_decode_kernel", kernel)
    got, _, steps = _decode(model, ids, mask, 5, True, monkeypatch)
    assert compiled == [True] * steps  # every fast step (per layer) ran the op
    for layer in model.model.layers:
        layer.self_attn.backend = "reference"
    want, _, _ = _decode(model, ids, mask, 5, True, monkeypatch)
    assert steps > 0 and rel_err(got, want) < 1e-5


@pytest.mark.parametrize(
    ("d", "sinks", "padded", "per_row_beta"), [(8, 2, False, False), (12, 0, True, False), (64, 4, True, True)]
)
def test_compiled_step_equals_decode_core_float64(d, sinks, padded, per_row_beta, licensed):
    """The C++ op (fp32, in place) against ``decode_core`` in float64 on the same inputs: output, shifted window
    (with the new key's decay) and state. ``d=12``: not a multiple of the SIMD width; ``d=64``: SmolLM2's."""
    from liquid_memory.nn.decay import DELTA_MIN
    from liquid_memory.ops.cpp import cpp_hybrid_decode

    gen = torch.Generator().manual_seed(d)
    b, h, hkv, w, hid, rank = 2, 6, 2, 5, 24, 4

    def r(*shape, scale=1.0):
        return torch.randn(*shape, generator=gen, dtype=torch.float64) * scale

    q, k, v, hidden = r(b, h, 1, d), r(b, hkv, 1, d), r(b, hkv, 1, d), r(b, 1, hid)
    keys, packed = r(b, hkv, w - 1, d), torch.cat([r(b, hkv, w - 1, d), -r(b, hkv, w - 1, 2 * d).abs()], -1)
    sink_k, sink_v = (r(b, hkv, sinks, d), r(b, hkv, sinks, d)) if sinks else (None, None)
    state = r(b, hkv, 2 * d, 2 * d).abs()
    valid = None
    if padded:
        valid = torch.ones(b, w, dtype=torch.bool)
        valid[0, :2] = False  # row 0: the key leaving the window is padding (no state update, no decay)
    params = (r(h, d, d, scale=d**-0.25), r(hkv, d, d, scale=d**-0.25), r(rank, hid, scale=0.3),
              r(hkv * 2 * d, rank, scale=0.3), r(hkv * 2 * d))  # fmt: skip
    beta = r(b, h, 1) if per_row_beta else r(h)
    want = decode_step.decode_core(q, k, v, hidden, keys, packed, sink_k, sink_v, state, valid, *params, beta,
                                   d**-0.5, "naive")  # fmt: skip

    def f32(x):
        return None if x is None else x.float().contiguous()

    keys32, packed32, state32 = f32(keys), f32(packed), f32(state)
    y = cpp_hybrid_decode(f32(q), f32(k), f32(v), f32(hidden), keys32, packed32, f32(sink_k), f32(sink_v), state32,
                          valid, *(f32(p) for p in params), f32(beta).reshape(-1), d**-0.5, DELTA_MIN)  # fmt: skip
    assert rel_err(y, want[0]) < 1e-5
    assert rel_err(keys32, want[1]) < 1e-6 and rel_err(packed32, want[2]) < 1e-5
    assert rel_err(state32, want[3]) < 1e-5


@pytest.mark.parametrize(("mode", "slots"), [("hybrid", 0), ("window", 0), ("hybrid", 4), ("softmax", 0)])
def test_fast_decode_only_for_the_two_memory_hybrid(mode, slots, monkeypatch):
    """A global cache has its own forward (three_memories.py) and mode='window' reads no state: neither may take
    the one-token step, while the plain hybrid takes it on the same cache."""
    model = patch_model(tiny_model("llama"), window=4, sinks=2, global_cache=slots, cache_block=2, backend="naive")
    perturb_liquid(model)
    ids = torch.randint(3, 61, (1, 12), generator=torch.Generator().manual_seed(13))
    cache = LiquidHybridCache(model)
    with torch.no_grad():
        model(ids[:, :8], past_key_values=cache, use_cache=True)  # the window is full, the state set
    attn, layer = model.model.layers[0].self_attn, cache.layers[0]
    two_memory = patch_model(tiny_model("llama"), window=4, sinks=2).model.layers[0].self_attn
    assert attention.fast_decode_ready(two_memory, layer, 1) == (slots == 0)  # the held cache itself qualifies
    two_memory.global_cache = 4
    assert not attention.fast_decode_ready(two_memory, layer, 1)
    attn.mode = mode
    assert attention.fast_decode_ready(attn, layer, 1) == (mode == "hybrid" and slots == 0)


@pytest.mark.parametrize(("mode", "slots"), [("window", 0), ("hybrid", 4), ("window", 4)])
def test_configurations_without_the_step_decode_as_the_general_path(mode, slots, monkeypatch):
    """Decoding a global-cache or window-only model (left padding, sinks): no fast step is taken and the logits
    are exactly those of the general path and of full recomputation. The mode switches after a hybrid prefill,
    so the cache holds a state and a full window: only the mode and global-cache conditions keep the step out."""
    model = patch_model(tiny_model("llama", dtype=torch.float64), window=4, backend="naive", sinks=2,
                        global_cache=slots, cache_block=2)  # fmt: skip
    perturb_liquid(model)
    ids = torch.randint(3, 61, (2, 16), generator=torch.Generator().manual_seed(14))
    mask = torch.ones_like(ids)
    mask[0, :3] = 0
    allowed, _, steps = _decode(model, ids, mask, 6, True, monkeypatch, decode_mode=mode)
    set_mode(model, "hybrid")
    general, _, _ = _decode(model, ids, mask, 6, False, monkeypatch, decode_mode=mode)
    assert steps == 0
    assert torch.equal(allowed, general)
    if mode == "hybrid":  # one mode throughout: decode == prefill
        full = model(ids, attention_mask=mask, position_ids=(mask.cumsum(-1) - 1).clamp_min(0), use_cache=False)
        assert rel_err(allowed[mask.bool()], full.logits[mask.bool()]) < 1e-12
