"""A cache filled with the liquid read off (``mode="window"``) holds only the exact memories.

Such a cache keeps no liquid state and no per-key decays (``attention.py``'s ``_keeps_state``); what the exact read
sees is unchanged, so decoding it step by step must equal one full window-mode forward, and its size must be that
of the window, the sinks and the slots' keys, values, positions and scores alone. Reading the state from it later
is a typed error, and a cache that already holds a state keeps it.
"""

from __future__ import annotations

import pytest
import torch

from liquid_memory.hf import LiquidHybridCache, PatchError, patch_model, set_mode
from tests.hf.hf_models import perturb_liquid, tiny_model
from tests.hf.test_global_cache import _incremental
from tests.numerics import rel_err


def _model(slots: int, score: str = "attention", dtype: torch.dtype = torch.float64):
    model = patch_model(tiny_model("llama", dtype=dtype), window=3, backend="naive", sinks=2, global_cache=slots,
                        cache_block=2, cache_score=score)  # fmt: skip
    perturb_liquid(model)
    set_mode(model, "window")
    return model


@pytest.mark.parametrize(("slots", "score"), [(3, "attention"), (3, "prompt"), (0, "attention")])
@pytest.mark.parametrize("first", [1, 9])
def test_window_mode_decode_equals_prefill_without_a_state(slots, score, first):
    model = _model(slots, score)
    ids = torch.randint(3, 61, (2, 24), generator=torch.Generator().manual_seed(6))
    full = model(ids, use_cache=False).logits
    got, cache = _incremental(model, ids, first)
    if score != "prompt":  # the prompt score depends on where a prefill call ends (global_cache.py)
        assert rel_err(got, full) < 1e-7
    assert torch.isfinite(got).all()
    head_dim = model.config.hidden_size // model.config.num_attention_heads
    for layer in cache.layers:
        assert layer.state() is None and layer.state_dropped
        assert layer.values.shape[-1] == head_dim  # no decays ride along with the window's values
        if slots:
            assert layer.slots.log_decay.shape[-1] == 0 and int(layer.slots.ok.sum()) > 0


def test_window_mode_cache_holds_fewer_bytes_and_stays_constant():
    model = _model(3, dtype=torch.float32)
    ids = torch.randint(3, 61, (1, 120), generator=torch.Generator().manual_seed(7))
    sizes, cache = [], LiquidHybridCache(model)
    with torch.no_grad():
        model(ids[:, :20], past_key_values=cache, use_cache=True)
        for i in range(20, 120):
            model(ids[:, i : i + 1], past_key_values=cache, use_cache=True)
            sizes.append(cache.nbytes())
    assert max(sizes[:50]) == max(sizes[50:]), "the window-mode cache grew with the context"
    set_mode(model, "hybrid")
    hybrid = LiquidHybridCache(model)
    with torch.no_grad():
        model(ids, past_key_values=hybrid, use_cache=True)
    layer, exact = hybrid.layers[0], cache.layers[0]
    state = layer.state()
    decays = layer.slots.log_decay.numel() * 4 + layer.values[..., exact.values.shape[-1] :].numel() * 4
    assert cache.nbytes() < hybrid.nbytes()
    assert hybrid.layers[0].nbytes() - exact.nbytes() == state.numel() * 4 + decays


@pytest.mark.parametrize("slots", [0, 3])
def test_reading_the_state_of_a_window_filled_cache_is_a_typed_error(slots):
    model = _model(slots)
    ids = torch.randint(3, 61, (1, 16), generator=torch.Generator().manual_seed(8))
    cache = LiquidHybridCache(model)
    with torch.no_grad():
        model(ids[:, :12], past_key_values=cache, use_cache=True)
        set_mode(model, "hybrid")
        with pytest.raises(PatchError, match="holds no liquid state"):
            model(ids[:, 12:13], past_key_values=cache, use_cache=True)


@pytest.mark.parametrize("score", ["attention", "recall"])
def test_a_cache_with_a_state_keeps_it_in_window_mode(score):
    """A hybrid prefill, then window-mode decoding: the global cache's state keeps taking the evicted pairs (the
    recall score also needs it from the start), so switching back to the hybrid read is allowed."""
    model = _model(2, score)
    ids = torch.randint(3, 61, (1, 20), generator=torch.Generator().manual_seed(9))
    if score == "attention":
        set_mode(model, "hybrid")
    cache = LiquidHybridCache(model)
    with torch.no_grad():
        model(ids[:, :10], past_key_values=cache, use_cache=True)
        set_mode(model, "window")
        for i in range(10, 19):
            model(ids[:, i : i + 1], past_key_values=cache, use_cache=True)
        set_mode(model, "hybrid")
        out = model(ids[:, 19:20], past_key_values=cache, use_cache=True).logits
    assert torch.isfinite(out).all()
    assert all(layer.state() is not None and not layer.state_dropped for layer in cache.layers)
