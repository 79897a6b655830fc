"""The option matrix: every LiquidMemory option (``decay_rank``, ``output_gate``, ``qk_norm``, ``out_norm_eps``,
``delta_rule``, ``short_conv``, ``short_conv_activation``; rows in layer_options.py) against its float64
token-by-token reference — the output with and without autograd (the cpp backend fuses the read-out norm when there
is none), cross-attention, gradients, and prefill + step decode — on every module backend; plus each option's own
defaults and parameters."""

from __future__ import annotations

import pytest
import torch

from liquid_memory import LiquidMemory
from tests.core.layer_options import OPTIONS, LayerOption, qk_normalised
from tests.core.layer_reference import cross_inputs, decode_error, gradient_errors, reference_layer
from tests.numerics import rel_err

BY_NAME = {option.name: option for option in OPTIONS}
MODES = [(option.name, mode) for option in OPTIONS for mode in option.modes]


def _input(option: LayerOption, module: LiquidMemory) -> torch.Tensor:
    return option.input_scale * torch.randn(2, 29, module.embed_dim, generator=torch.Generator().manual_seed(1))


@pytest.mark.parametrize(("name", "mode"), MODES, ids=[f"{n}-{m}" for n, m in MODES])
def test_option_matches_its_equations(backend, name, mode):
    option = BY_NAME[name]
    module, causal = option.make(backend), mode == "causal"
    x = _input(option, module)
    expected, _ = option.reference(module, x, x, x, mode)
    out, _ = module(x, x, x, is_causal=causal, need_weights=False)
    with torch.no_grad():
        inference, _ = module(x, x, x, is_causal=causal, need_weights=False)
    assert rel_err(out, expected) < 1e-5 and rel_err(inference, expected) < 1e-5
    if option.without is not None:  # the reference really applies the option
        assert rel_err(option.without(module, x, mode), expected) > option.differs


@pytest.mark.parametrize("name", [o.name for o in OPTIONS if o.cross])
def test_option_in_cross_attention_with_kdim_and_vdim(backend, name):
    option = BY_NAME[name]
    module = option.make(backend, kdim=16, vdim=24, **option.kwargs)
    query, key, value = cross_inputs()
    out, _ = module(query, key, value, need_weights=False)
    expected, _ = reference_layer(module, query, key, value, "cross")
    assert rel_err(out, expected) < 1e-5


@pytest.mark.parametrize("name", [o.name for o in OPTIONS])
def test_option_gradients_match_float64_reference(backend, name):
    option = BY_NAME[name]
    errors = gradient_errors(option.make(backend), option.grads, reference=option.reference)
    assert max(errors.values()) < 1e-4, errors


@pytest.mark.parametrize("name", [o.name for o in OPTIONS])
def test_option_decode_continues_the_prefill(backend, name):
    assert decode_error(BY_NAME[name].make(backend)) < 1e-5


def test_low_rank_cross_attention_shapes():
    module = BY_NAME["decay_rank"].make("chunked", kdim=16, vdim=24, rank=5)
    assert module.decay_proj.down.weight.shape == (5, 16) and module.decay_proj.weight.shape == (32, 16)


def test_qk_norm_with_padded_keys(backend):
    x = torch.randn(2, 11, 32, generator=torch.Generator().manual_seed(4))
    padded = torch.zeros(2, 11, dtype=torch.bool)
    padded[1, 7:] = True
    module = qk_normalised(backend)
    out, _ = module(x, x, x, key_padding_mask=padded, is_causal=True, need_weights=False)
    expected, _ = reference_layer(module, x, x, x, "causal", padded)
    assert rel_err(out, expected) < 1e-5


def test_gate_parameters_and_mha_checkpoint():
    assert "gate_proj.weight" not in LiquidMemory(32, 4).state_dict()  # off by default: MHA-shaped
    module = LiquidMemory(32, 4, output_gate=True)
    assert tuple(module.gate_proj.weight.shape) == (32, 32) and "output_gate=True" in repr(module)
    result = module.load_state_dict(torch.nn.MultiheadAttention(32, 4).state_dict(), strict=False)
    assert not result.unexpected_keys and "gate_proj.weight" in result.missing_keys


def test_qk_norm_is_off_by_default_and_adds_no_parameters():
    assert not LiquidMemory(32, 4).qk_norm and "qk_norm" not in repr(LiquidMemory(32, 4))
    module = LiquidMemory(32, 4, qk_norm=True)
    assert "qk_norm=True" in repr(module)
    assert module.state_dict().keys() == LiquidMemory(32, 4).state_dict().keys()


def test_default_and_invalid_eps():
    module = LiquidMemory(32, 4)
    assert module.out_norm.eps == 1e-5 and "out_norm_eps=1e-05" in repr(module)
    for bad in (0.0, -1e-3, float("nan")):
        with pytest.raises(ValueError, match="out_norm_eps"):
            LiquidMemory(32, 4, out_norm_eps=bad)
