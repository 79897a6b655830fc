"""LiquidMemory against a float64 token-by-token recomputation of docs/architecture.md §2."""

from __future__ import annotations

import pytest
import torch

from liquid_memory import LiquidMemory
from tests.core.layer_reference import reference_layer, reference_weights
from tests.numerics import rel_err


def make(backend: str, **kwargs) -> LiquidMemory:
    torch.manual_seed(0)
    module = LiquidMemory(kwargs.pop("embed_dim", 32), kwargs.pop("num_heads", 4), backend=backend, **kwargs)
    with torch.no_grad():  # non-trivial norm weight and decay so the test can see them
        if module.out_norm is not None:
            module.out_norm.weight.uniform_(0.5, 1.5)
        module.decay_proj.weight.normal_(0, 0.3)
    return module


@pytest.mark.parametrize("batch_first", [True, False])
@pytest.mark.parametrize("mode", ["causal", "bidirectional"])
def test_self_attention_matches_equations(backend, batch_first, mode):
    module = make(backend, batch_first=batch_first)
    x = torch.randn(2, 37, 32)
    x_in = x if batch_first else x.transpose(0, 1).contiguous()
    out, weights = module(x_in, x_in, x_in, is_causal=mode == "causal", need_weights=False)
    assert weights is None
    out = out if batch_first else out.transpose(0, 1)
    expected, _ = reference_layer(module, x, x, x, mode)
    assert rel_err(out, expected) < 1e-5


def test_causal_attn_mask_forms_equal_is_causal(backend):
    module = make(backend, batch_first=True)
    x = torch.randn(2, 20, 32)
    float_mask = torch.nn.Transformer.generate_square_subsequent_mask(20)
    bool_mask = torch.ones(20, 20, dtype=torch.bool).triu(1)
    expected, _ = reference_layer(module, x, x, x, "causal")
    for mask in (float_mask, bool_mask, bool_mask.expand(2 * 4, 20, 20)):
        out, _ = module(x, x, x, attn_mask=mask, need_weights=False)
        assert rel_err(out, expected) < 1e-5


def test_cross_attention_with_kdim_vdim(backend):
    module = make(backend, kdim=24, vdim=40, batch_first=True)
    assert not module._qkv_same_embed_dim
    query, key, value = torch.randn(3, 11, 32), torch.randn(3, 29, 24), torch.randn(3, 29, 40)
    out, _ = module(query, key, value, need_weights=False)
    expected, _ = reference_layer(module, query, key, value, "cross")
    assert rel_err(out, expected) < 1e-5


@pytest.mark.parametrize("mask_kind", ["bool", "float"])
@pytest.mark.parametrize("mode", ["causal", "bidirectional", "cross"])
def test_key_padding_mask(backend, mask_kind, mode):
    module = make(backend, batch_first=True)
    x = torch.randn(2, 25, 32)
    padded = torch.zeros(2, 25, dtype=torch.bool)
    padded[0, 18:] = True
    padded[1, 3:6] = True
    mask = padded if mask_kind == "bool" else torch.zeros(2, 25).masked_fill(padded, float("-inf"))
    query = x if mode != "cross" else torch.randn(2, 7, 32)
    key = value = x
    if mode == "bidirectional":
        query = key = value = x
    out, _ = module(query, key, value, key_padding_mask=mask, is_causal=mode == "causal", need_weights=False)
    expected, _ = reference_layer(module, query, key, value, mode, padded)
    assert rel_err(out, expected) < 1e-5
    if mode == "cross":  # padded keys contribute nothing: dropping them gives the same answer
        trimmed, _ = module(query[:1], x[:1, :18], x[:1, :18], need_weights=False)
        assert rel_err(out[:1], trimmed) < 1e-5


def test_unbatched_input(backend):
    module = make(backend)
    x = torch.randn(19, 32)
    out, weights = module(x, x, x, is_causal=True)
    expected, _ = reference_layer(module, x[None], x[None], x[None], "causal")
    assert out.shape == (19, 32) and weights.shape == (19, 19)
    assert rel_err(out, expected[0]) < 1e-5


@pytest.mark.parametrize("mode", ["causal", "bidirectional", "cross"])
def test_need_weights_is_the_implicit_attention(backend, mode):
    """The recurrence's own weights (``short_conv=0``; with the convolution: tests/core/test_short_conv.py)."""
    module = make(backend, batch_first=True, num_heads=2, short_conv=0)
    x = torch.randn(2, 15, 32)
    query = torch.randn(2, 9, 32) if mode == "cross" else x
    _, per_head = module(query, x, x, is_causal=mode == "causal", average_attn_weights=False)
    _, averaged = module(query, x, x, is_causal=mode == "causal")
    expected = reference_weights(module, query, x, mode)
    assert per_head.shape == (2, 2, query.shape[1], 15)
    assert rel_err(per_head, expected) < 1e-5
    assert rel_err(averaged, expected.mean(1)) < 1e-5
    # the weights really produce the mixer output: o = A @ v
    _, o = reference_layer(module, query, x, x, mode)
    v = x.double() @ module.in_proj_weight.double().chunk(3)[2].T + module.in_proj_bias.double().chunk(3)[2]
    v = v.view(2, 15, 2, 16).transpose(1, 2)
    assert rel_err(per_head.double() @ v, o) < 1e-5


def test_need_weights_too_large_returns_none_and_warns(backend, monkeypatch):
    import liquid_memory.nn.implicit_attention as lm_module

    monkeypatch.setattr(lm_module, "MAX_WEIGHT_ELEMENTS", 100)
    monkeypatch.setattr(lm_module, "_warned_weights", False)
    module = make(backend, batch_first=True)
    x = torch.randn(1, 11, 32)
    with pytest.warns(UserWarning, match="2\\^24"):
        _, weights = module(x, x, x, is_causal=True)
    assert weights is None


def test_coupled_input_option(backend):
    module = make(backend, batch_first=True, coupled_input=True)
    assert module.coupled_input
    x = torch.randn(2, 21, 32)
    out, _ = module(x, x, x, is_causal=True, need_weights=False)
    expected, _ = reference_layer(module, x, x, x, "causal")
    assert rel_err(out, expected) < 1e-5
    plain = make(backend, batch_first=True)
    assert rel_err(plain(x, x, x, is_causal=True, need_weights=False)[0], out) > 1e-3


def test_without_out_norm_and_bias(backend):
    module = make(backend, batch_first=True, out_norm=False, bias=False)
    assert module.out_norm is None and module.in_proj_bias is None
    x = torch.randn(2, 17, 32)
    out, _ = module(x, x, x, is_causal=True, need_weights=False)
    expected, _ = reference_layer(module, x, x, x, "causal")
    assert rel_err(out, expected) < 1e-5


def test_decay_initialisation_half_lives():
    module = LiquidMemory(64, 2)
    delta = torch.nn.functional.softplus(module.decay_proj.bias.double()) + 1e-6
    half_lives = (torch.log(torch.tensor(2.0, dtype=torch.float64)) / delta).view(2, 32)
    for head in half_lives:
        assert abs(head.min().item() - 1.0) < 1e-3 and abs(head.max().item() - 4096) / 4096 < 1e-3
        ratios = head[1:] / head[:-1]
        assert torch.allclose(ratios, ratios.mean().expand_as(ratios), rtol=1e-6)  # log-uniform


def test_dropout_applies_only_in_training(backend):
    module = make(backend, batch_first=True, dropout=0.5)
    x = torch.randn(2, 16, 32)
    module.eval()
    a, _ = module(x, x, x, is_causal=True, need_weights=False)
    b, _ = module(x, x, x, is_causal=True, need_weights=False)
    assert torch.equal(a, b)
    module.train()
    c, _ = module(x, x, x, is_causal=True, need_weights=False)
    assert rel_err(c, a) > 1e-2


def test_gradients_flow_to_every_parameter(backend):
    module = make(backend, batch_first=True)
    x = torch.randn(2, 33, 32, requires_grad=True)
    out, _ = module(x, x, x, is_causal=True, need_weights=False)
    out.square().mean().backward()
    for name, param in module.named_parameters():
        assert param.grad is not None and torch.isfinite(param.grad).all() and param.grad.abs().sum() > 0, name
    assert torch.isfinite(x.grad).all()


@pytest.mark.parametrize("mode", ["causal", "bidirectional"])
def test_need_weights_across_many_blocks_reproduce_the_output(backend, mode):
    """Lengths beyond one 64-row block exercise the block-factored weights: A @ v must equal the mixer output."""
    module = make(backend, batch_first=True, num_heads=2, short_conv=0)
    x = torch.randn(1, 150, 32)
    _, per_head = module(x, x, x, is_causal=mode == "causal", average_attn_weights=False)
    _, o = reference_layer(module, x, x, x, mode)
    v = x.double() @ module.in_proj_weight.double().chunk(3)[2].T + module.in_proj_bias.double().chunk(3)[2]
    v = v.view(1, 150, 2, 16).transpose(1, 2)
    assert rel_err(per_head.double() @ v, o) < 1e-5
    if mode == "causal":
        assert per_head.triu(1).abs().max() == 0
