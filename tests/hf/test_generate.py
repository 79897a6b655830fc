"""Decoding with the constant-size cache: same tokens as full recomputation, batched left padding, sampling."""

from __future__ import annotations

import pytest
import torch

from liquid_memory.hf import LiquidHybridCache, patch_model
from liquid_memory.hf.cache import LiquidCacheLayer
from tests.hf.hf_models import perturb_liquid, tiny_model
from tests.numerics import rel_err


def _patched(arch="llama", window=4, backend="chunked", sinks=0):
    model = patch_model(tiny_model(arch), window=window, backend=backend, sinks=sinks)
    perturb_liquid(model)
    return model


def _greedy_by_recomputation(model, ids, attention_mask, steps):
    """Greedy decoding that re-runs the whole sequence every step, no cache at all."""
    for _ in range(steps):
        position_ids = (attention_mask.cumsum(-1) - 1).clamp_min(0)
        logits = model(ids, attention_mask=attention_mask, position_ids=position_ids, use_cache=False).logits
        nxt = logits[:, -1].argmax(-1, keepdim=True)
        ids = torch.cat([ids, nxt], 1)
        attention_mask = torch.cat([attention_mask, torch.ones_like(nxt)], 1)
    return ids


@pytest.mark.parametrize(("window", "sinks"), [(0, 0), (4, 0), (4, 2), (0, 2)])
@pytest.mark.parametrize("arch", ["llama", "qwen2"])
def test_generate_with_cache_equals_full_recomputation(arch, window, sinks):
    model = _patched(arch, window, sinks=sinks)
    ids = torch.randint(3, 61, (1, 9), generator=torch.Generator().manual_seed(1))
    mask = torch.ones_like(ids)
    out = model.generate(input_ids=ids, attention_mask=mask, max_new_tokens=12, do_sample=False, pad_token_id=0)
    assert torch.equal(out, _greedy_by_recomputation(model, ids, mask, 12))


@pytest.mark.parametrize(("window", "sinks", "first"), [(4, 0, 6), (4, 2, 6), (4, 3, 2), (0, 2, 6), (0, 3, 2)])
def test_incremental_logits_equal_full_forward(window, sinks, first):
    """A prefill, a chunk, then single tokens; (_, 3, 2): the sinks are completed after the prefill."""
    model = _patched(window=window, sinks=sinks)
    ids = torch.randint(3, 61, (2, 15), generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        full = model(ids, use_cache=False).logits
        cache = LiquidHybridCache(model)
        parts = [model(ids[:, :first], past_key_values=cache, use_cache=True).logits]
        parts.append(model(ids[:, first:9], past_key_values=cache, use_cache=True).logits)  # a chunk after a prefill
        for t in range(9, 15):
            parts.append(model(ids[:, t : t + 1], past_key_values=cache, use_cache=True).logits)
    assert rel_err(torch.cat(parts, 1), full) < 1e-5
    assert cache.get_seq_length() == 15


@pytest.mark.parametrize(("window", "sinks"), [(4, 0), (4, 2), (0, 2)])
def test_batched_left_padding_equals_one_by_one(window, sinks):
    model = _patched(window=window, sinks=sinks)
    gen = torch.Generator().manual_seed(3)
    prompts = [torch.randint(3, 61, (n,), generator=gen) for n in (10, 4, 7)]
    width = max(len(p) for p in prompts)
    ids = torch.zeros(len(prompts), width, dtype=torch.long)
    mask = torch.zeros_like(ids)
    for i, p in enumerate(prompts):
        ids[i, width - len(p) :], mask[i, width - len(p) :] = p, 1
    batched = model.generate(input_ids=ids, attention_mask=mask, max_new_tokens=10, do_sample=False, pad_token_id=0)
    for i, p in enumerate(prompts):
        single = model.generate(input_ids=p[None], max_new_tokens=10, do_sample=False, pad_token_id=0)[0, len(p) :]
        assert torch.equal(batched[i, width : width + len(single)], single), f"prompt {i}"  # (it may stop at EOS)


def test_sampling_uses_the_cache_and_matches_recomputation():
    model = _patched(window=4)
    ids = torch.randint(3, 61, (2, 8), generator=torch.Generator().manual_seed(4))
    kwargs = dict(max_new_tokens=10, do_sample=True, top_k=0, temperature=1.0, pad_token_id=0)
    torch.manual_seed(7)
    cached = model.generate(input_ids=ids, **kwargs)
    torch.manual_seed(7)
    uncached = model.generate(input_ids=ids, use_cache=False, **kwargs)
    assert torch.equal(cached, uncached)
    assert cached.shape == (2, 18)


@pytest.mark.parametrize(("window", "sinks"), [(4, 0), (4, 2), (0, 2)])
def test_decode_state_does_not_grow(window, sinks):
    model = _patched(window=window, sinks=sinks)
    cache = LiquidHybridCache(model)
    ids = torch.randint(3, 61, (1, 40), generator=torch.Generator().manual_seed(5))
    sizes = []
    with torch.no_grad():
        model(ids[:, :8], past_key_values=cache, use_cache=True)
        for t in range(8, 40):
            model(ids[:, t : t + 1], past_key_values=cache, use_cache=True)
            sizes.append(cache.nbytes())
    assert len(set(sizes)) == 1 and sizes[0] > 0
    layer = cache.layers[0]
    assert isinstance(layer, LiquidCacheLayer) and layer.keys.shape[-2] == max(window - 1, 0)  # window - 1 held
    assert (layer.sinks is not None and layer.sinks[0].shape[2] == sinks) if sinks else layer.sinks is None
    assert cache.get_seq_length() == 40


def test_default_cache_of_generate_is_made_liquid():
    model = _patched(window=4)
    ids = torch.randint(3, 61, (1, 6), generator=torch.Generator().manual_seed(6))
    out = model.generate(input_ids=ids, max_new_tokens=3, do_sample=False, pad_token_id=0, return_dict_in_generate=True)
    assert all(isinstance(layer, LiquidCacheLayer) for layer in out.past_key_values.layers)


@pytest.mark.parametrize(("slots", "mode"), [(0, "hybrid"), (3, "hybrid"), (3, "window")])
def test_a_reset_cache_serves_a_new_sequence_as_a_fresh_one(slots, mode):
    """``Cache.reset()`` reuses a cache: nothing of the first sequence — window, state, sinks, global cache, a
    dropped state — may reach the second, even with another batch size."""
    from liquid_memory.hf import set_mode

    model = patch_model(tiny_model("llama", dtype=torch.float64), window=3, sinks=2, backend="naive",
                        global_cache=slots, cache_block=2)  # fmt: skip
    perturb_liquid(model)
    set_mode(model, mode)
    gen = torch.Generator().manual_seed(12)
    first, second = torch.randint(3, 61, (2, 17), generator=gen), torch.randint(3, 61, (1, 13), generator=gen)

    def serve(cache, ids):
        with torch.no_grad():
            out = [model(ids[:, :9], past_key_values=cache, use_cache=True).logits]
            for i in range(9, ids.shape[1]):
                out.append(model(ids[:, i : i + 1], past_key_values=cache, use_cache=True).logits)
        return torch.cat(out, 1)

    reused = LiquidHybridCache(model)
    serve(reused, first)
    reused.reset()
    assert rel_err(serve(reused, second), serve(LiquidHybridCache(model), second)) < 1e-12
