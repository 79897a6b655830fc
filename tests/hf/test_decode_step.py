"""The one-token decode step (hf/decode_step.py) against the general path, in float64: same logits, same state."""

from __future__ import annotations

import pytest
import torch
from hf_models import perturb_liquid, tiny_model
from scan_cases import rel_err

import liquid_memory.hf.attention as attention
from liquid_memory.hf import LiquidHybridCache, patch_model


def _decode(model, ids, mask, first, fast: bool, monkeypatch) -> tuple[torch.Tensor, list[int], int]:
    """Prefill ``first`` tokens, then one token at a time; ``(logits, cache sizes, fast steps taken)``."""
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
    return torch.cat(parts, 1), sizes[1:], sum(taken)


@pytest.mark.parametrize(("window", "sinks", "padded"), [(4, 0, False), (4, 2, False), (3, 2, True), (5, 3, True)])
def test_fast_decode_equals_general_path_float64(window, sinks, padded, monkeypatch):
    model = patch_model(tiny_model("llama", dtype=torch.float64), window=window, backend="naive", sinks=sinks)
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
