"""``short_conv=K``: a causal depthwise convolution on the projected q, k, v. Its equations (SiLU or linear) with
and without autograd, cross-attention, gradients and prefill + step decode are rows of the option matrix
(test_layer_options.py); here: other kernel sizes, with LiquidLM's options, the decode window in pieces and as
state, padding, bidirectional / cross / ``need_weights`` calls, refusals, MHA checkpoints, bf16 and
``torch.compile``."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from liquid_memory import LiquidMemory
from tests.core.layer_reference import conv_stream, cross_inputs, reference_layer, reference_weights
from tests.numerics import rel_err


def make(backend: str, short_conv: int = 4, **kwargs) -> LiquidMemory:
    torch.manual_seed(0)
    return LiquidMemory(32, 4, batch_first=True, backend=backend, short_conv=short_conv, **kwargs)


def _inputs(length: int = 29, batch: int = 2, seed: int = 1) -> torch.Tensor:
    return torch.randn(batch, length, 32, generator=torch.Generator().manual_seed(seed))


def test_with_liquidlm_options_matches_equations(backend):
    module = make(backend, qk_norm=True, output_gate=True, out_norm_eps=1e-2)
    x = _inputs()
    out, _ = module(x, x, x, is_causal=True, need_weights=False)
    assert rel_err(out, reference_layer(module, x, x, x, "causal")[0]) < 1e-5


def test_kernel_sizes_and_separate_streams(backend):
    for kernel in (2, 3, 7):
        module = make(backend, short_conv=kernel)
        x = _inputs(length=11)
        out, _ = module(x, x, x, is_causal=True, need_weights=False)
        assert rel_err(out, reference_layer(module, x, x, x, "causal")[0]) < 1e-5
    torch.manual_seed(0)
    module = LiquidMemory(32, 4, kdim=16, vdim=24, batch_first=True, backend=backend, short_conv=3)
    gen = torch.Generator().manual_seed(2)
    q, k, v = (
        torch.randn(2, 13, 32, generator=gen),
        torch.randn(2, 13, 16, generator=gen),
        torch.randn(2, 13, 24, generator=gen),
    )
    out, _ = module(q, k, v, is_causal=True, need_weights=False)
    assert rel_err(out, reference_layer(module, q, k, v, "causal")[0]) < 1e-5


def test_decode_in_pieces_and_state_round_trip(backend):
    module = make(backend, short_conv=4).eval()
    x = _inputs(length=14, batch=3)
    with torch.no_grad():
        full, _ = module(x, x, x, is_causal=True, need_weights=False)
        module.reset_state()
        pieces = [module.prefill(x[:, :5]), module.prefill(x[:, 5:7])]  # a piece shorter than the window
        snapshot = module.get_state()
        pieces += [module.step(x[:, t]).unsqueeze(1) for t in range(7, 10)]
        assert rel_err(torch.cat(pieces, 1), full[:, :10]) < 1e-5
        module.set_state(snapshot)  # back to after token 7: the same continuation
        again = torch.stack([module.step(x[:, t]) for t in range(7, 14)], dim=1)
    assert rel_err(again, full[:, 7:]) < 1e-5
    assert set(snapshot) == {"memory", "conv"}
    assert snapshot["memory"].shape == (3, 4, 8, 8) and snapshot["conv"].shape == (3, 3, 96)


def test_state_errors_are_clear():
    module = make("chunked")
    with pytest.raises(ValueError, match="short_conv the state is a dict"):
        module.set_state(torch.zeros(1, 4, 8, 8))
    with pytest.raises(ValueError, match="conv window must have shape"):
        module.set_state({"memory": torch.zeros(1, 4, 8, 8), "conv": torch.zeros(1, 2, 96)})
    module.set_state({"memory": torch.zeros(2, 4, 8, 8), "conv": torch.zeros(2, 3, 96)})
    with pytest.raises(ValueError, match="state holds batch 2"):
        module.step(torch.zeros(3, 32))


def test_padded_positions_contribute_nothing(backend):
    module = make(backend)
    x = _inputs(length=12)
    padded = torch.zeros(2, 12, dtype=torch.bool)
    padded[1, :5] = True  # left padding (batched decode prompts)
    padded[0, 9:] = True  # right padding
    out, _ = module(x, x, x, key_padding_mask=padded, is_causal=True, need_weights=False)
    assert rel_err(out, reference_layer(module, x, x, x, "causal", padded)[0]) < 1e-5
    noisy = x.clone()
    noisy[padded] = 100.0  # what sits at padded positions must not matter
    again, _ = module(noisy, noisy, noisy, key_padding_mask=padded, is_causal=True, need_weights=False)
    keep = ~padded
    assert rel_err(again[keep], out[keep]) < 1e-6
    alone, _ = module(x[1:, 5:], x[1:, 5:], x[1:, 5:], is_causal=True, need_weights=False)
    assert rel_err(out[1, 5:], alone[0]) < 1e-5  # a left-padded row gives the unpadded sequence's outputs
    module.eval()
    with torch.no_grad():  # a padded prefill continues like the unpadded one
        module.reset_state()
        module.prefill(x[1:, :9], key_padding_mask=padded[1:, :9])
        steps = torch.stack([module.step(x[1:, t]) for t in range(9, 12)], dim=1)
    assert rel_err(steps[0], alone[0, 4:]) < 1e-5


def test_bidirectional_and_cross_attention_match_equations(backend):
    """Bidirectional: the one sequence convolved causally, then both recurrences; cross-attention: the query and the
    key/value streams convolved apart (kdim 16, vdim 24), the padding mask on keys and values only."""
    module = make(backend)
    x = _inputs(length=17)
    padded = torch.zeros(2, 17, dtype=torch.bool)
    padded[1, :4] = True
    out, _ = module(x, x, x, key_padding_mask=padded, need_weights=False)
    assert rel_err(out, reference_layer(module, x, x, x, "bidirectional", padded)[0]) < 1e-5
    real = x[1:, 4:]  # one tensor: query is key is value, a bidirectional call
    alone, _ = module(real, real, real, need_weights=False)
    assert rel_err(out[1, 4:], alone[0]) < 1e-5  # left padding changes nothing for the real tokens
    torch.manual_seed(0)
    cross = LiquidMemory(32, 4, kdim=16, vdim=24, batch_first=True, backend=backend, short_conv=3)
    query, key, value = cross_inputs()
    source_padded = torch.zeros(2, 9, dtype=torch.bool)
    source_padded[0, 6:] = True
    for mask in (None, source_padded):
        out, _ = cross(query, key, value, key_padding_mask=mask, need_weights=False)
        assert rel_err(out, reference_layer(cross, query, key, value, "cross", mask)[0]) < 1e-5
    square = make(backend)  # a cross-attention call whose lengths happen to match: the query rows are not masked
    query, memory = _inputs(length=9), _inputs(length=9, seed=3)
    out, _ = square(query, memory, memory, key_padding_mask=source_padded, need_weights=False)
    assert rel_err(out, reference_layer(square, query, memory, memory, "cross", source_padded)[0]) < 1e-5


@pytest.mark.parametrize("mode", ["causal", "bidirectional", "cross"])
def test_weights_are_the_implicit_attention_over_the_convolved_values(backend, mode):
    module = make(backend)
    x = _inputs(length=15)
    query = _inputs(length=9, seed=4) if mode == "cross" else x
    _, per_head = module(query, x, x, is_causal=mode == "causal", average_attn_weights=False)
    assert rel_err(per_head, reference_weights(module, query, x, mode)) < 1e-5
    _, o = reference_layer(module, query, x, x, mode)  # o = A @ v' with v' the convolved values
    w_v, b_v = module.in_proj_weight.double().chunk(3)[2], module.in_proj_bias.double().chunk(3)[2]
    v = conv_stream(module.qkv_conv, x.double() @ w_v.T + b_v, 2, None)
    assert rel_err(per_head.double() @ v.view(2, 15, 4, 8).transpose(1, 2), o) < 1e-5


def test_causal_mask_is_a_causal_call_and_the_delta_rule_still_refuses_other_modes():
    module = make("chunked")
    x = _inputs(length=6)
    mask = nn.Transformer.generate_square_subsequent_mask(6)
    out, _ = module(x, x, x, attn_mask=mask, need_weights=False)
    assert rel_err(out, module(x, x, x, is_causal=True, need_weights=False)[0]) == 0
    delta = make("chunked", qk_norm=True, delta_rule=True)  # float64 check: tests/core/test_delta_rule.py
    with pytest.raises(NotImplementedError, match="delta_rule=True supports causal calls"):
        delta(x, x, x, need_weights=False)


@pytest.mark.parametrize("bad", [1, -2, True, 2.0])
def test_bad_kernel_sizes_and_activation(bad):
    with pytest.raises(ValueError, match="short_conv is a kernel size"):
        LiquidMemory(32, 4, short_conv=bad)
    with pytest.raises(ValueError, match="activation must be one of"):
        LiquidMemory(32, 4, short_conv=4, short_conv_activation="relu")


def test_mha_checkpoint_loads_with_the_conv_missing_and_other_inits_unchanged():
    torch.manual_seed(0)
    mha = nn.MultiheadAttention(32, 4, batch_first=True)
    module = LiquidMemory(32, 4, batch_first=True, short_conv=4)
    result = module.load_state_dict(mha.state_dict(), strict=False)
    assert not result.unexpected_keys
    assert set(result.missing_keys) == {"decay_proj.weight", "decay_proj.bias", "out_norm.weight", "qkv_conv.weight"}
    converted = LiquidMemory.from_mha(mha, short_conv=4)
    assert converted.short_conv == 4 and torch.equal(converted.in_proj_weight, mha.in_proj_weight)
    assert "short_conv=4" in repr(converted) and "short_conv" not in repr(LiquidMemory(32, 4, short_conv=0))
    assert LiquidMemory(32, 4).short_conv == 4  # the default (benchmarks/results/mqar/README.md)
    torch.manual_seed(5)
    plain = LiquidMemory(32, 4, short_conv=0).state_dict()
    torch.manual_seed(5)
    convolved = LiquidMemory(32, 4, short_conv=4).state_dict()
    assert convolved.keys() - plain.keys() == {"qkv_conv.weight"}
    assert all(torch.equal(plain[name], convolved[name]) for name in plain)


def test_bf16_in_bf16_out(backend):
    module = make(backend, qk_norm=True)
    x = _inputs()
    want, _ = module(x, x, x, is_causal=True, need_weights=False)
    half = make(backend, qk_norm=True).to(torch.bfloat16)
    got, _ = half(x.bfloat16(), x.bfloat16(), x.bfloat16(), is_causal=True, need_weights=False)
    assert got.dtype == torch.bfloat16
    assert rel_err(got, want) < 3e-2
    half.eval()
    with torch.no_grad():
        half.prefill(x[:, :20].bfloat16())
        step = half.step(x[:, 20].bfloat16())
    assert step.dtype == torch.bfloat16 and rel_err(step, want[:, 20]) < 3e-2


def test_compile_fullgraph_forward_and_backward(licensed):
    torch._dynamo.reset()
    module = make("cpp", qk_norm=True)
    x = _inputs(length=40)

    def loss(x):
        return module(x, x, x, is_causal=True, need_weights=False)[0].square().sum()

    eager = loss(x)
    eager.backward()
    want = {name: p.grad.clone() for name, p in module.named_parameters()}
    module.zero_grad()
    compiled = torch.compile(loss, fullgraph=True)(x)
    compiled.backward()
    assert rel_err(compiled, eager) < 1e-5
    for name, p in module.named_parameters():
        assert rel_err(p.grad, want[name]) < 1e-4, name


def test_compile_bidirectional_and_cross(licensed):
    torch._dynamo.reset()
    module = make("cpp")
    x, memory = _inputs(length=21), _inputs(length=13, seed=3)

    def both(x, memory):
        return module(x, x, x, need_weights=False)[0], module(x, memory, memory, need_weights=False)[0]

    for got, want in zip(torch.compile(both, fullgraph=True)(x, memory), both(x, memory), strict=True):
        assert rel_err(got, want) < 1e-5
