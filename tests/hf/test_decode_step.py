"""The one-token decode step (hf/decode_step.py) against the general path, in float64: same logits, same state."""

from __future__ import annotations

import pytest
import torch

import liquid_memory.hf.attention as attention
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
    """The licensed C++ step (it updates the state in place) and the reference step give the same logits."""
    model = patch_model(tiny_model("qwen2"), window=4, sinks=2)
    perturb_liquid(model)
    ids = torch.randint(3, 61, (1, 14), generator=torch.Generator().manual_seed(12))
    mask = torch.ones_like(ids)
    got, _, steps = _decode(model, ids, mask, 5, True, monkeypatch)
    for layer in model.model.layers:
        layer.self_attn.backend = "reference"
    want, _, _ = _decode(model, ids, mask, 5, True, monkeypatch)
    assert steps > 0 and rel_err(got, want) < 1e-5


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
