"""The global cache (hf/global_cache.py) against a float64 recomputation of its documented math.

The reference simulates the three memories literally, per batch row and KV head, with Python lists: at each
block departure it builds the state from its closed form (every key older than the boundary that is neither
cached nor a sink, with the product of the decays since its own position), scores the candidates by their
self-recall error, keeps the worst-recalled ``N``, and reads each query's window, older sinks and cache by
softmax and the state by its feature map in one normaliser. Nothing of the module's blocked tensors is reused.
"""

from __future__ import annotations

import pytest
import torch

from liquid_memory.hf import LiquidHybridCache, patch_model
from liquid_memory.hf.global_cache import OBSERVED, POOL, boundary
from tests.hf.hf_models import perturb_liquid, tiny_model
from tests.hf.test_reference import _mask4d, features
from tests.numerics import rel_err


def prompt_reference(attn, q, k, bi, g, real, liquid, first, observed):
    """The ``"prompt"`` score of every key of a prefill call of ``first`` tokens: the softmax of each of its last
    ``observed`` real queries and of the group's heads over the real non-sink keys it may see, averaged, times
    the number of keys the latest of them sees, then the largest within ±POOL//2 positions."""
    group = attn.num_heads // attn.num_kv_heads
    queries = [i for i in range(max(first - observed, 0), first) if real[i]]
    raw, count = {}, 0
    for i in queries:
        seen = [s for s in range(i + 1) if liquid[s]]
        count = max(count, len(seen))
        for hi in range(g * group, (g + 1) * group) if seen else ():  # a query that sees no key counts, gives 0
            weights = torch.softmax(torch.stack([q[bi, hi, i] @ k[bi, g, s] * attn.scaling for s in seen]), 0)
            for s, p in zip(seen, weights, strict=True):
                raw[s] = raw.get(s, 0.0) + float(p)
    raw = {s: p / (len(queries) * group) * count for s, p in raw.items()}
    half = POOL // 2
    return {x: max(raw.get(y, 0.0) for y in range(max(x - half, 0), min(x + half + 1, first))) for x in range(first)}


def reference(attn, hidden, cos, sin, valid, read_liquid=True, first=None, observed=None):
    """``first``: the length of the prefill call (the rest decoded one token per call; ``None``: one call);
    ``observed``: its last queries that choose a ``"prompt"`` cache."""
    b, t, _ = hidden.shape
    h, hkv, d, w = attn.num_heads, attn.num_kv_heads, attn.head_dim, attn.window
    c, n = attn.cache_block, attn.global_cache
    q, k, v, fq, fk, a = features(attn, hidden, cos, sin)
    first = t if first is None else first
    out = torch.zeros(b, h, t, d, dtype=torch.float64)
    for bi in range(b):
        real = [s for s in range(t) if valid[bi, s]]
        sinks = set(real[: attn.sinks])
        liquid = [bool(valid[bi, s]) and s not in sinks for s in range(t)]
        for g in range(hkv):
            if attn.cache_score == "prompt":
                chosen = prompt_reference(attn, q, k, bi, g, valid[bi].tolist(), liquid, first, observed)

            def state(p, cached, bi=bi, g=g, liquid=liquid):
                s_mat = torch.zeros(2 * d, d + 1, dtype=torch.float64)
                for s in range(p):
                    if liquid[s] and s not in cached:
                        decay = torch.ones(2 * d, dtype=torch.float64)
                        for r in range(s + 1, p):
                            if liquid[r]:
                                decay = decay * a[bi, g, r]
                        s_mat += torch.outer(decay * fk[bi, g, s], torch.cat([v[bi, g, s], torch.ones(1).double()]))
                return s_mat

            origin = real[0]  # blocks are counted from the row's first real token (padding departs at once)
            cached, p, received, kept_score = [], origin, {}, {}
            for ti in range(t):
                while p < boundary(ti, w, c, origin):
                    s_mat = state(p, cached)
                    candidates = cached + [s for s in range(p, p + c) if liquid[s]]
                    scores = {}
                    for x in candidates:
                        if attn.cache_score == "recall":
                            read = fk[bi, g, x] @ s_mat
                            recalled = read[:d] / read[d] if read[d] > 1e-30 else torch.zeros(d).double()
                            scores[x] = float(((v[bi, g, x] - recalled) ** 2).sum())
                        elif attn.cache_score == "prompt" and x < first:  # scored by the prefill's last queries
                            scores[x] = kept_score[x] if x in kept_score else chosen[x]
                        else:  # mean attention probability received while a window key
                            total, count = received.get(x, (0.0, 0))
                            scores[x] = kept_score[x] if x in kept_score else total / max(count, 1)
                    cached = sorted(sorted(candidates, key=lambda x, sc=scores: (-sc[x], x))[:n])
                    kept_score = {x: scores[x] for x in cached}
                    p += c
                s_mat = state(p, cached)
                window_keys = [s for s in range(p, ti + 1) if valid[bi, s]]
                exact = window_keys + sorted(s for s in sinks if s < p) + cached
                for hi in range(g * (h // hkv), (g + 1) * (h // hkv)):
                    num, den = torch.zeros(d, dtype=torch.float64), torch.zeros((), dtype=torch.float64)
                    weights = {}
                    for s in exact:
                        weights[s] = torch.exp(q[bi, hi, ti] @ k[bi, g, s] * attn.scaling)
                        num, den = num + weights[s] * v[bi, g, s], den + weights[s]
                    if read_liquid:
                        read = fq[bi, hi, ti] @ s_mat
                        beta = attn.liquid.mix_log_scale[hi].exp()
                        num, den = num + beta * read[:d], den + beta * read[d]
                    if den > 0:
                        out[bi, hi, ti] = num / den
                    if valid[bi, ti]:  # the attention each window key receives (the "attention" score)
                        for s in window_keys:
                            total, count = received.get(s, (0.0, 0))
                            received[s] = (total + float(weights[s] / den), count + 1)
    return attn.o_proj(out.transpose(1, 2).reshape(b, t, h * d))


CASES = [  # (window, block, slots, sinks, score)
    (3, 1, 2, 0, "recall"), (3, 3, 2, 0, "recall"), (2, 4, 3, 2, "recall"), (4, 2, 1, 1, "recall"),
    (0, 3, 2, 0, "recall"), (3, 1, 2, 0, "attention"), (3, 3, 2, 0, "attention"), (2, 4, 3, 2, "attention"),
    (4, 2, 1, 1, "attention"), (0, 3, 2, 0, "attention"), (3, 1, 2, 0, "prompt"), (3, 3, 2, 0, "prompt"),
    (2, 4, 3, 2, "prompt"), (4, 2, 1, 1, "prompt"), (0, 3, 2, 0, "prompt"),
]  # fmt: skip


@pytest.mark.parametrize(("window", "block", "slots", "sinks", "score"), CASES)
@pytest.mark.parametrize("padding", ["none", "left", "right"])
def test_global_cache_matches_float64_reference(window, block, slots, sinks, score, padding):
    model = tiny_model("llama", dtype=torch.float64)
    patch_model(model, window=window, backend="naive", sinks=sinks, global_cache=slots, cache_block=block,
                cache_score=score)  # fmt: skip
    perturb_liquid(model)
    attn = model.model.layers[1].self_attn
    b, t = 2, 19
    hidden = torch.randn(b, t, 32, dtype=torch.float64, generator=torch.Generator().manual_seed(3))
    valid = torch.ones(b, t, dtype=torch.bool)
    if padding == "left":
        valid[1, :4] = False
    elif padding == "right":
        valid[1, -3:] = False
    cos, sin = model.model.rotary_emb(hidden, position_ids=torch.arange(t)[None].expand(b, t))
    got = attn(hidden, position_embeddings=(cos, sin), attention_mask=_mask4d(valid))[0]
    want = reference(attn, hidden, cos, sin, valid, observed=OBSERVED)
    rows = valid[:, :, None].expand_as(got)
    assert rel_err(got[rows], want[rows]) < 1e-10


@pytest.mark.parametrize("score", ["attention", "recall"])
def test_window_mode_reads_only_the_exact_memories(score):
    model = tiny_model("llama", dtype=torch.float64)
    patch_model(model, window=3, backend="naive", sinks=1, global_cache=2, cache_block=2, cache_score=score)
    perturb_liquid(model)
    attn = model.model.layers[0].self_attn
    attn.mode = "window"
    hidden = torch.randn(1, 15, 32, dtype=torch.float64, generator=torch.Generator().manual_seed(5))
    valid = torch.ones(1, 15, dtype=torch.bool)
    cos, sin = model.model.rotary_emb(hidden, position_ids=torch.arange(15)[None])
    got = attn(hidden, position_embeddings=(cos, sin), attention_mask=_mask4d(valid))[0]
    assert rel_err(got, reference(attn, hidden, cos, sin, valid, read_liquid=False)) < 1e-10


def test_a_cache_that_holds_every_key_is_the_original_attention():
    """With more slots than keys nothing enters the state: the model is its original softmax attention."""
    model = tiny_model("llama", dtype=torch.float64)
    ids = torch.randint(3, 61, (2, 21), generator=torch.Generator().manual_seed(0))
    want = model(ids).logits
    patch_model(model, window=2, backend="naive", global_cache=32, cache_block=3)
    perturb_liquid(model)
    assert rel_err(model(ids, use_cache=False).logits, want) < 1e-12


def _incremental(model, ids, first, mask=None):
    """Prefill ``first`` tokens, then one token per call; positions count real tokens (as generate() does)."""
    mask = torch.ones_like(ids) if mask is None else mask
    pos = (mask.cumsum(-1) - 1).clamp_min(0)
    cache = LiquidHybridCache(model)
    logits = [model(ids[:, :first], attention_mask=mask[:, :first], position_ids=pos[:, :first],
                    past_key_values=cache, use_cache=True).logits]  # fmt: skip
    for i in range(first, ids.shape[1]):
        logits.append(model(ids[:, i : i + 1], attention_mask=mask[:, : i + 1], position_ids=pos[:, i : i + 1],
                            past_key_values=cache, use_cache=True).logits)  # fmt: skip
    return torch.cat(logits, 1), cache


@pytest.mark.parametrize("first", [1, 7, 16])
@pytest.mark.parametrize("score", ["attention", "recall"])
@pytest.mark.parametrize(("window", "block", "slots", "sinks"), [(3, 4, 2, 2), (2, 1, 3, 0), (0, 3, 2, 1)])
def test_decode_step_by_step_equals_prefill(first, score, window, block, slots, sinks):
    model = tiny_model("mistral", dtype=torch.float64)
    patch_model(model, window=window, backend="naive", sinks=sinks, global_cache=slots, cache_block=block,
                cache_score=score)  # fmt: skip
    perturb_liquid(model)
    ids = torch.randint(3, 61, (2, 30), generator=torch.Generator().manual_seed(1))
    full = model(ids, use_cache=False).logits
    got, _ = _incremental(model, ids, first)
    assert rel_err(got, full) < 1e-7  # float64 model; transformers computes RoPE's cos/sin in float32


def test_left_padded_batch_equals_each_sequence_alone():
    model = tiny_model("qwen2", dtype=torch.float64)
    patch_model(model, window=3, backend="naive", sinks=2, global_cache=2, cache_block=3)
    perturb_liquid(model)
    gen = torch.Generator().manual_seed(2)
    long, short = torch.randint(3, 61, (1, 26), generator=gen), torch.randint(3, 61, (1, 19), generator=gen)
    ids = torch.cat([long, torch.cat([torch.zeros(1, 7, dtype=torch.long), short], 1)])
    mask = torch.ones_like(ids)
    mask[1, :7] = 0
    batched, _ = _incremental(model, ids, 12, mask)
    alone_long, _ = _incremental(model, long, 12)
    alone_short, _ = _incremental(model, short, 5)
    assert rel_err(batched[0], alone_long[0]) < 1e-7
    assert rel_err(batched[1, 7:], alone_short[0]) < 1e-7


@pytest.mark.parametrize("score", ["attention", "prompt"])
def test_decode_state_is_constant_in_context_length(score):
    model = tiny_model("llama")
    patch_model(model, window=4, backend="naive", sinks=2, global_cache=3, cache_block=5, cache_score=score)
    ids = torch.randint(3, 61, (1, 200), generator=torch.Generator().manual_seed(4))
    sizes = []
    cache = LiquidHybridCache(model)
    with torch.no_grad():
        model(ids[:, :20], past_key_values=cache, use_cache=True)
        for i in range(20, 200):
            model(ids[:, i : i + 1], past_key_values=cache, use_cache=True)
            sizes.append(cache.nbytes())
            assert cache.layers[0].keys.shape[2] <= 4 + 5 - 1  # window + block - 1 keys at most
    # the window holds W..W+C-1 keys, so the size cycles with period C; it never grows with the context
    assert sizes[20:] == sizes[15:-5], "the decode state is not periodic in the block"
    assert max(sizes[:90]) == max(sizes[90:]), "the decode state grew with the context"


@pytest.mark.parametrize("score", ["attention", "prompt"])
def test_global_cache_is_saved_and_loaded_with_the_model(tmp_path, score):
    from liquid_memory.hf.io import base_fingerprint, load_liquid_into, read_config, save_liquid

    model = tiny_model("llama")
    fingerprint = base_fingerprint(model)
    patch_model(model, window=4, backend="naive", sinks=2, global_cache=5, cache_block=8, cache_score=score)
    save_liquid(model, tmp_path, base_model="tiny", base_sha256=fingerprint)
    config = read_config(tmp_path)
    assert (config["global_cache"], config["cache_block"], config["cache_score"]) == (5, 8, score)
    fresh = tiny_model("llama")
    patch_model(fresh, window=config["window"], backend="naive", sinks=config["sinks"],
                global_cache=config["global_cache"], cache_block=config["cache_block"],
                cache_score=config["cache_score"])  # fmt: skip
    load_liquid_into(fresh, tmp_path)
    ids = torch.randint(3, 61, (1, 40), generator=torch.Generator().manual_seed(6))
    assert torch.equal(fresh(ids, use_cache=False).logits, model(ids, use_cache=False).logits)


def test_typed_errors_for_bad_settings():
    model = tiny_model("llama")
    with pytest.raises(ValueError, match="global_cache"):
        patch_model(model, window=4, global_cache=-1)
    with pytest.raises(ValueError, match="cache_block"):
        patch_model(tiny_model("llama"), window=4, global_cache=2, cache_block=0)
    with pytest.raises(ValueError, match="cache_score"):
        patch_model(tiny_model("llama"), window=4, global_cache=2, cache_score="loudest")


def test_attention_scores_are_shared_down_the_layers():
    """Layer 1 ranks each departing token by the larger of its own score and layer 0's (max over KV heads)."""
    import liquid_memory.hf.three_memories as tm

    model = tiny_model("llama", dtype=torch.float64)
    patch_model(model, window=3, backend="naive", sinks=1, global_cache=2, cache_block=4)
    perturb_liquid(model)
    ids = torch.randint(3, 61, (2, 26), generator=torch.Generator().manual_seed(7))
    seen: list[list[torch.Tensor]] = []
    original = tm.depart

    def recording(state, slots, piece, *args):
        seen[-1].append(piece[5].clone())
        return original(state, slots, piece, *args)

    layers = [layer.self_attn for layer in model.model.layers]
    board = layers[0].board
    try:
        tm.depart = recording
        for shared in (False, True):
            for attn in layers:
                attn.board = board if shared else None
            seen.append([])
            model(ids, use_cache=False)
    finally:
        tm.depart = original
        for attn in layers:
            attn.board = board
    alone, together = seen
    per_layer = len(alone) // 2  # the departures of layer 0, then those of layer 1
    assert per_layer > 2 and len(together) == len(alone)
    for own0, own1, got1 in zip(alone[:per_layer], alone[per_layer:], together[per_layer:], strict=True):
        assert torch.allclose(got1, torch.maximum(own1, own0.amax(1, keepdim=True)))
    assert any(not torch.equal(a, b) for a, b in zip(alone[per_layer:], together[per_layer:], strict=True))


def test_prompt_cache_is_chosen_by_the_last_queries_of_the_call(monkeypatch):
    """Fewer observed queries than the call has: only the last ``OBSERVED`` rank the keys."""
    import liquid_memory.hf.three_memories as tm

    monkeypatch.setattr(tm, "OBSERVED", 5)
    model = tiny_model("llama", dtype=torch.float64)
    patch_model(model, window=3, backend="naive", sinks=1, global_cache=3, cache_block=2, cache_score="prompt")
    perturb_liquid(model)
    attn = model.model.layers[1].self_attn
    hidden = torch.randn(2, 23, 32, dtype=torch.float64, generator=torch.Generator().manual_seed(8))
    valid = torch.ones(2, 23, dtype=torch.bool)
    valid[1, :5] = False
    cos, sin = model.model.rotary_emb(hidden, position_ids=torch.arange(23)[None].expand(2, 23))
    got = attn(hidden, position_embeddings=(cos, sin), attention_mask=_mask4d(valid))[0]
    want = reference(attn, hidden, cos, sin, valid, observed=5)
    assert rel_err(got[valid], want[valid]) < 1e-10
    assert rel_err(got[valid], reference(attn, hidden, cos, sin, valid, observed=32)[valid]) > 1e-6


@pytest.mark.parametrize("first", [9, 16])
def test_prompt_cache_prefill_then_decode_matches_float64_reference(first):
    """The prefill call chooses the cache by its last queries; each decode step after it ranks the keys that
    leave the window by the attention they received (the ``"attention"`` score)."""
    model = tiny_model("qwen2", dtype=torch.float64)
    patch_model(model, window=3, backend="naive", sinks=2, global_cache=2, cache_block=2, cache_score="prompt")
    perturb_liquid(model)
    attn = model.model.layers[0].self_attn
    b, t = 2, 27
    hidden = torch.randn(b, t, 32, dtype=torch.float64, generator=torch.Generator().manual_seed(9))
    valid = torch.ones(b, t, dtype=torch.bool)
    valid[1, :3] = False
    cos, sin = model.model.rotary_emb(hidden, position_ids=torch.arange(t)[None].expand(b, t))
    cache = LiquidHybridCache(model)
    outs = [attn(hidden[:, :first], position_embeddings=(cos[:, :first], sin[:, :first]),
                 attention_mask=_mask4d(valid[:, :first]), past_key_values=cache)[0]]  # fmt: skip
    for i in range(first, t):
        outs.append(attn(hidden[:, i : i + 1], position_embeddings=(cos[:, i : i + 1], sin[:, i : i + 1]),
                         attention_mask=valid[:, None, None, : i + 1], past_key_values=cache)[0])  # fmt: skip
    got = torch.cat(outs, 1)
    want = reference(attn, hidden, cos, sin, valid, first=first, observed=32)
    assert rel_err(got[valid], want[valid]) < 1e-10
