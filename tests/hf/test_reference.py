"""The patched attention equals a float64 recomputation of the documented math (hf/hybrid.py docstring).

The reference below is written from the formula, token by token, independently of the module's blocked
window and shifted-scan implementation: projections, RoPE, feature maps, decays, the product of decays,
the shared normaliser with e^β, padding (a padded key contributes nothing and does not decay the state).
"""

from __future__ import annotations

import pytest
import torch

from liquid_memory.hf import patch_model
from liquid_memory.hf.attention import LiquidHybridAttention
from tests.hf.hf_models import ARCHS, perturb_liquid, tiny_model
from tests.numerics import rel_err


def _rotate(x, cos, sin):
    half = x.shape[-1] // 2
    return x * cos + torch.cat([-x[..., half:], x[..., :half]], dim=-1) * sin


def features(attn: LiquidHybridAttention, hidden, cos, sin):
    """``q, k, v`` (projected, RoPE on q and k), their feature maps ``fq, fk`` and the per-token decays ``a``."""
    b, t, _ = hidden.shape
    h, hkv, d = attn.num_heads, attn.num_kv_heads, attn.head_dim
    lp = attn.liquid

    def proj(lin, heads):
        y = hidden @ lin.weight.T + (lin.bias if lin.bias is not None else 0)
        return y.view(b, t, heads, d).transpose(1, 2)

    q, k, v = proj(attn.q_proj, h), proj(attn.k_proj, hkv), proj(attn.v_proj, hkv)
    q, k = _rotate(q, cos[:, None], sin[:, None]), _rotate(k, cos[:, None], sin[:, None])

    def phi(x, weight):
        z = torch.einsum("bhtd,hde->bhte", x, weight)
        return torch.cat([torch.softmax(z, -1), torch.softmax(-z, -1)], -1)

    pre = hidden @ lp.decay.down.T @ lp.decay.up.T + lp.decay.bias
    a = torch.exp(-(torch.nn.functional.softplus(pre) + 1e-6)).view(b, t, hkv, 2 * d).transpose(1, 2)
    return q, k, v, phi(q, lp.feature_q.weight), phi(k, lp.feature_k.weight), a


def reference(attn: LiquidHybridAttention, hidden, cos, sin, valid):
    """Documented math in float64, loops over batch, query head, query and key."""
    b, t, _ = hidden.shape
    h, hkv, d, w = attn.num_heads, attn.num_kv_heads, attn.head_dim, attn.window
    # sinks: the first attn.sinks real (non-padded) keys of each sequence, written as a plain count
    sink = torch.zeros(b, t, dtype=torch.bool)
    for bi in range(b):
        real = [s for s in range(t) if valid[bi, s]]
        for s in real[: attn.sinks]:
            sink[bi, s] = True
    lp = attn.liquid
    q, k, v, fq, fk, a = features(attn, hidden, cos, sin)
    out = torch.zeros(b, h, t, d, dtype=torch.float64)
    for bi in range(b):
        for hi in range(h):
            g = hi // (h // hkv)
            for ti in range(t):
                num, den = torch.zeros(d, dtype=torch.float64), torch.zeros((), dtype=torch.float64)
                beta = lp.mix_log_scale[hi].exp() if (w > 0 or attn.sinks > 0) else 1.0  # cancels otherwise
                for s in range(ti + 1):
                    if not valid[bi, s]:
                        continue
                    if (w > 0 and s > ti - w) or sink[bi, s]:  # window or sink key: exact softmax weight
                        e = torch.exp(q[bi, hi, ti] @ k[bi, g, s] * attn.scaling)
                    else:  # older key: through the recurrence, decays of (non-padded, non-sink) tokens s+1..t-W
                        decay = torch.ones(2 * d, dtype=torch.float64)
                        for r in range(s + 1, ti - w + 1):
                            if valid[bi, r] and not sink[bi, r]:
                                decay = decay * a[bi, g, r]
                        e = beta * (fq[bi, hi, ti] @ (decay * fk[bi, g, s]))
                    num, den = num + e * v[bi, g, s], den + e
                if den > 0:
                    out[bi, hi, ti] = num / den
    return attn.o_proj(out.transpose(1, 2).reshape(b, t, h * d))


def _mask4d(valid):
    t = valid.shape[1]
    causal = torch.ones(t, t, dtype=torch.bool).tril()
    return (causal[None, None] & valid[:, None, None, :]).expand(valid.shape[0], 1, t, t)


@pytest.mark.parametrize("arch", ARCHS)
@pytest.mark.parametrize(("window", "sinks"), [(0, 0), (3, 0), (3, 2), (0, 2)])
@pytest.mark.parametrize("padding", ["none", "left", "right"])
def test_patched_attention_matches_float64_reference(arch, window, sinks, padding):
    model = tiny_model(arch, dtype=torch.float64)
    patch_model(model, window=window, backend="naive", sinks=sinks)
    perturb_liquid(model)
    attn = model.model.layers[1].self_attn
    b, t = 2, 11
    torch.manual_seed(3)
    hidden = torch.randn(b, t, 32, dtype=torch.float64)
    valid = torch.ones(b, t, dtype=torch.bool)
    if padding == "left":
        valid[1, :4] = False
    elif padding == "right":
        valid[1, -3:] = False
    cos, sin = model.model.rotary_emb(hidden, position_ids=torch.arange(t)[None].expand(b, t))
    got = attn(hidden, position_embeddings=(cos, sin), attention_mask=_mask4d(valid))[0]
    want = reference(attn, hidden, cos, sin, valid)
    rows = valid[:, :, None].expand_as(got)  # padded query rows are never read
    assert rel_err(got[rows], want[rows]) < 1e-10


def test_bias_projections_are_reused_qwen2():
    model = tiny_model("qwen2")
    before = {n: p.clone() for n, p in model.named_parameters()}
    patch_model(model, window=4)
    attn = model.model.layers[0].self_attn
    assert attn.q_proj.bias is not None and torch.equal(
        attn.q_proj.weight, before["model.layers.0.self_attn.q_proj.weight"]
    )
    names = {n for n, _ in model.named_parameters()}
    assert set(before) <= names  # every original weight kept under its own name


def test_window_zero_has_no_softmax_part_and_large_window_is_softmax():
    """window >= T: every key is a window key, so the hybrid IS the original softmax attention."""
    model = tiny_model("llama", dtype=torch.float64)
    ids = torch.randint(3, 61, (2, 9), generator=torch.Generator().manual_seed(0))
    want = model(ids).logits
    patch_model(model, window=64, backend="naive")
    perturb_liquid(model)
    assert rel_err(model(ids, use_cache=False).logits, want) < 1e-12


def test_combine_takes_one_beta_per_head_or_per_query():
    """β ``[H]`` and the same values spread to ``[B, H, T]`` give the same output; a different query's β changes
    only that query's row."""
    from liquid_memory.hf.hybrid import combine

    gen = torch.Generator().manual_seed(0)
    b, h, t, d = 2, 3, 5, 4
    win = (
        torch.randn(b, h, t, d, generator=gen),
        torch.rand(b, h, t, generator=gen) + 0.5,
        torch.randn(b, h, t, generator=gen),
    )
    lin = torch.cat([torch.randn(b, h, t, d, generator=gen), torch.rand(b, h, t, 1, generator=gen) + 0.1], -1)
    beta = torch.randn(h, generator=gen)
    per_query = beta[None, :, None].expand(b, h, t).clone()
    want = combine(win, lin, beta, d)
    assert torch.equal(combine(win, lin, per_query, d), want)
    per_query[1, 2, 3] += 2.0
    diff = (combine(win, lin, per_query, d) - want).abs().sum(-1)
    assert diff[1, 2, 3] > 1e-3 and diff.sum() == diff[1, 2, 3]


def test_prefill_grouped_scan_matches_repeated_heads(monkeypatch, licensed):
    """Inference prefill on the cpp backend runs one grouped scan per layer (each KV head's recurrence once); with
    it switched off (the KV heads repeated for every query head, the reference) logits and cached states agree."""
    import liquid_memory.hf.hybrid as hybrid
    from liquid_memory.hf import LiquidHybridCache

    model = patch_model(tiny_model("llama"), window=4, sinks=2)
    perturb_liquid(model)
    ids = torch.randint(3, 61, (2, 40), generator=torch.Generator().manual_seed(21))
    mask = torch.ones_like(ids)
    mask[0, :7] = 0

    def prefill():
        cache = LiquidHybridCache(model)
        with torch.no_grad():
            out = model(ids, attention_mask=mask, position_ids=(mask.cumsum(-1) - 1).clamp_min(0),
                        past_key_values=cache, use_cache=True)  # fmt: skip
        return out.logits, torch.stack([layer.state() for layer in cache.layers])

    real, used = hybrid.grouped_scan_kernel, []

    def kernel(*args, **kwargs):
        found = real(*args, **kwargs)
        used.append(found is not None)
        return found

    monkeypatch.setattr(hybrid, "grouped_scan_kernel", kernel)
    got, got_states = prefill()
    assert used == [True] * len(model.model.layers)
    monkeypatch.setattr(hybrid, "grouped_scan_kernel", lambda *args, **kwargs: None)
    want, want_states = prefill()
    assert rel_err(got, want) < 1e-5 and rel_err(got_states, want_states) < 1e-5
