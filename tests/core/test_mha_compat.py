"""Drop-in behaviour: MHA state dicts, conversion, and clear errors for what a recurrence cannot do."""

from __future__ import annotations

import pytest
import torch

from liquid_memory import LiquidMemory
from tests.core.layer_reference import reference_layer


def test_mha_state_dict_loads_with_only_liquid_parameters_missing():
    mha = torch.nn.MultiheadAttention(32, 4, batch_first=True)
    module = LiquidMemory(32, 4, batch_first=True)
    result = module.load_state_dict(mha.state_dict(), strict=False)
    assert sorted(result.missing_keys) == ["decay_proj.bias", "decay_proj.weight", "out_norm.weight", "qkv_conv.weight"]
    assert result.unexpected_keys == []
    assert torch.equal(module.in_proj_weight, mha.in_proj_weight)


def test_mha_state_dict_with_separate_kdim_vdim():
    mha = torch.nn.MultiheadAttention(32, 4, kdim=16, vdim=24)
    module = LiquidMemory(32, 4, kdim=16, vdim=24)
    result = module.load_state_dict(mha.state_dict(), strict=False)
    assert result.unexpected_keys == []
    assert set(result.missing_keys) == {"decay_proj.bias", "decay_proj.weight", "out_norm.weight", "qkv_conv.weight"}


def test_from_mha_copies_weights_and_configuration(backend):
    mha = torch.nn.MultiheadAttention(32, 4, dropout=0.1, kdim=16, vdim=24, batch_first=True)
    module = LiquidMemory.from_mha(mha, backend=backend)
    assert (module.batch_first, module.kdim, module.vdim, module.dropout) == (True, 16, 24, 0.1)
    for name in ("q_proj_weight", "k_proj_weight", "v_proj_weight", "in_proj_bias"):
        assert torch.equal(getattr(module, name), getattr(mha, name))
    assert torch.equal(module.out_proj.weight, mha.out_proj.weight)
    module.eval()
    query, key, value = torch.randn(2, 5, 32), torch.randn(2, 9, 16), torch.randn(2, 9, 24)
    out, _ = module(query, key, value, need_weights=False)
    expected, _ = reference_layer(module, query, key, value, "cross")
    assert ((out.double() - expected).norm() / expected.norm()).item() < 1e-5


@pytest.mark.parametrize("flag", ["add_bias_kv", "add_zero_attn"])
def test_unsupported_constructor_flags(flag):
    with pytest.raises(NotImplementedError, match="add_bias_kv or add_zero_attn"):
        LiquidMemory(32, 4, **{flag: True})


def test_bad_constructor_arguments():
    with pytest.raises(ValueError, match="divisible"):
        LiquidMemory(30, 4)
    with pytest.raises(ValueError, match="> 0"):
        LiquidMemory(0, 4)


@pytest.mark.parametrize(
    "mask",
    [
        torch.ones(6, 6, dtype=torch.bool).tril(-1),  # anti-causal
        torch.zeros(6, 6).masked_fill(torch.eye(6, dtype=torch.bool), float("-inf")),
        torch.randn(6, 6),  # additive bias
        torch.ones(6, 6, dtype=torch.bool).triu(2),  # causal with a look-ahead of one
    ],
)
def test_unsupported_attn_mask_raises(mask, backend):
    module = LiquidMemory(32, 4, batch_first=True, backend=backend)
    x = torch.randn(1, 6, 32)
    with pytest.raises(NotImplementedError, match="causal pattern"):
        module(x, x, x, attn_mask=mask)


def test_empty_mask_is_accepted(backend):
    module = LiquidMemory(32, 4, batch_first=True, backend=backend)
    x = torch.randn(1, 6, 32)
    plain, _ = module(x, x, x, need_weights=False)
    masked, _ = module(x, x, x, attn_mask=torch.zeros(6, 6, dtype=torch.bool), need_weights=False)
    assert torch.equal(plain, masked)


def test_shape_errors_are_clear(backend):
    module = LiquidMemory(32, 4, batch_first=True, backend=backend)
    x = torch.randn(2, 6, 32)
    with pytest.raises(ValueError, match="expected 32"):
        module(torch.randn(2, 6, 31), x, x)
    with pytest.raises(ValueError, match="all be batched or all unbatched"):
        module(x, x[0], x[0])
    with pytest.raises(ValueError, match="2-D .* or 3-D"):
        module(x[None], x[None], x[None])
    with pytest.raises(ValueError, match="key_padding_mask must have shape"):
        module(x, x, x, key_padding_mask=torch.zeros(2, 5, dtype=torch.bool))
    with pytest.raises(ValueError, match="L == S"):
        module(torch.randn(2, 4, 32), x, x, is_causal=True)
    with pytest.raises(NotImplementedError, match="0 \\(keep\\) and -inf"):
        module(x, x, x, key_padding_mask=torch.randn(2, 6))
    with pytest.raises(ValueError, match="same batch"):
        module(x, torch.randn(2, 6, 32), torch.randn(2, 5, 32))
