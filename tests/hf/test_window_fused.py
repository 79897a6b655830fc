"""The window part's fused path (hf/window_blocks.py: the query blocks stacked into one fused attention call,
inference in fp32) against its op-by-op reference (``force_reference=True``) and against the float64 math of
tests/hf/test_reference.py: sinks, padding on either side, cached keys, blocks crossing ``QUERY_BLOCK``, rows
that see no key, NaN."""

from __future__ import annotations

import math

import pytest
import torch

import liquid_memory.hf.hybrid as hybrid
import liquid_memory.hf.window_blocks as window_blocks
from liquid_memory.hf import patch_model
from liquid_memory.hf.hybrid import combine, window_part
from liquid_memory.hf.sinks import gather_sinks, sink_mask
from tests.hf.hf_models import perturb_liquid, tiny_model
from tests.hf.test_reference import _mask4d, reference
from tests.numerics import rel_err


def _case(t, n_cached, padding, *, seed=0, b=2, h=6, hkv=2, d=16):
    g = torch.Generator().manual_seed(seed)
    length = n_cached + t
    q = torch.randn(b, h, t, d, generator=g)
    k, v = torch.randn(b, hkv, length, d, generator=g), torch.randn(b, hkv, length, d, generator=g)
    valid = torch.ones(b, length, dtype=torch.bool)
    if padding == "left":
        valid[1, : n_cached + 5] = False
    elif padding == "right":
        valid[1, -4:] = False
    return q, k, v, valid


def _sinks(k, v, valid, n):
    mask = sink_mask(valid, n)
    return gather_sinks(k, v, mask, n)


@pytest.mark.parametrize("padding", ["none", "left", "right"])
@pytest.mark.parametrize(("window", "n_sinks"), [(4, 0), (4, 2), (0, 3), (9, 2), (40, 2)])
@pytest.mark.parametrize(("t", "n_cached"), [(1, 0), (23, 0), (23, 3), (1, 8)])
def test_fused_window_equals_reference(t, n_cached, window, n_sinks, padding, monkeypatch):
    monkeypatch.setattr(hybrid, "QUERY_BLOCK", 8)  # several blocks, the last one partial
    monkeypatch.setattr(window_blocks, "CHUNK_BLOCKS", 2)  # several fused calls, the last one partial
    calls, flash = [], window_blocks._flash
    monkeypatch.setattr(window_blocks, "_flash", lambda *a, **kw: calls.append(1) or flash(*a, **kw))
    q, k, v, valid = _case(t, n_cached, padding)
    sinks = _sinks(k, v, valid, n_sinks) if n_sinks else None
    with torch.no_grad():
        fused = window_part(q, k, v, valid, n_cached, window, 0.25, sinks)
        assert len(calls) == (-(-t // 16) if window else 0)  # one fused call per 2 blocks of 8; window 0: the loop
        plain = window_part(q, k, v, valid, n_cached, window, 0.25, sinks, force_reference=True)
    assert len(calls) == (-(-t // 16) if window else 0)
    seen = plain[1] > 0  # rows with a visible exact key
    assert torch.equal(seen, fused[1] > 0)
    assert torch.equal(torch.isinf(fused[2]), ~seen) and bool((fused[0][~seen] == 0).all())
    y_fused, y_plain = fused[0] / fused[1].clamp_min(1e-30)[..., None], plain[0] / plain[1].clamp_min(1e-30)[..., None]
    assert rel_err(y_fused[seen], y_plain[seen]) < 1e-5
    log_mass = fused[2] + fused[1].log(), plain[2] + plain[1].log()  # the shift differs, the mass must not
    assert rel_err(log_mass[0][seen], log_mass[1][seen]) < 1e-5
    lin = torch.rand(*q.shape[:3], 2 * q.shape[-1], generator=torch.Generator().manual_seed(1))
    beta = torch.randn(q.shape[1], generator=torch.Generator().manual_seed(2))
    assert rel_err(combine(fused, lin, beta, q.shape[-1]), combine(plain, lin, beta, q.shape[-1])) < 1e-5


def test_a_nan_query_stays_in_its_row():
    q, k, v, valid = _case(23, 0, "none")
    q[0, 1, 7, 3] = math.nan
    with torch.no_grad():
        fused = window_part(q, k, v, valid, 0, 4, 0.25)
    assert torch.isnan(fused[0][0, 1, 7]).all()
    fused[0][0, 1, 7] = 0.0
    assert torch.isfinite(fused[0]).all()


@pytest.mark.parametrize("padding", ["none", "left"])
@pytest.mark.parametrize(("window", "sinks"), [(3, 2), (0, 2), (3, 0)])
def test_fp32_inference_matches_float64_math(window, sinks, padding, monkeypatch):
    """The fused window inside the patched layer (fp32, no autograd) against the float64 formula."""
    monkeypatch.setattr(hybrid, "QUERY_BLOCK", 4)
    model = tiny_model("llama")
    patch_model(model, window=window, backend="chunked", sinks=sinks)
    perturb_liquid(model)
    attn = model.model.layers[1].self_attn
    b, t = 2, 11
    torch.manual_seed(3)
    hidden = torch.randn(b, t, 32)
    valid = torch.ones(b, t, dtype=torch.bool)
    if padding == "left":
        valid[1, :4] = False
    cos, sin = model.model.rotary_emb(hidden, position_ids=torch.arange(t)[None].expand(b, t))
    with torch.no_grad():
        got = attn(hidden, position_embeddings=(cos, sin), attention_mask=_mask4d(valid))[0]
    model64 = model.double()
    want = reference(model64.model.layers[1].self_attn, hidden.double(), cos.double(), sin.double(), valid)
    rows = valid[:, :, None].expand_as(got)
    assert rel_err(got[rows], want[rows]) < 1e-5
