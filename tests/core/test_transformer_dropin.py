"""LiquidMemory inside PyTorch's own Transformer layers, with their masks, forward and backward."""

from __future__ import annotations

import torch
from torch import nn

from liquid_memory import LiquidMemory, replace_attention


def _finite_backward(output: torch.Tensor, model: nn.Module) -> None:
    output.square().mean().backward()
    grads = [p.grad for p in model.parameters() if p.requires_grad]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)


def test_encoder_layer_with_causal_and_padding_masks(backend):
    torch.manual_seed(0)
    layer = nn.TransformerEncoderLayer(32, 4, dim_feedforward=64, dropout=0.0, batch_first=True)
    layer.self_attn = LiquidMemory.from_mha(layer.self_attn, backend=backend)
    x = torch.randn(2, 12, 32)
    mask = nn.Transformer.generate_square_subsequent_mask(12)
    padding = torch.zeros(2, 12, dtype=torch.bool)
    padding[1, 9:] = True
    out = layer(x, src_mask=mask, src_key_padding_mask=padding, is_causal=True)
    assert out.shape == x.shape
    # causal: the first 5 outputs do not depend on later tokens
    x2 = x.clone()
    x2[:, 5:] = torch.randn(2, 7, 32)
    out2 = layer(x2, src_mask=mask, src_key_padding_mask=padding, is_causal=True)
    assert torch.allclose(out[:, :5], out2[:, :5], atol=1e-6)
    _finite_backward(out, layer)


def test_encoder_layer_eval_fast_path_does_not_bypass_liquid_memory(backend):
    torch.manual_seed(0)
    layer = nn.TransformerEncoderLayer(32, 4, dim_feedforward=64, dropout=0.0, batch_first=True)
    layer.self_attn = LiquidMemory.from_mha(layer.self_attn, backend=backend)
    x = torch.randn(2, 10, 32)
    train_out = layer(x)
    layer.eval()
    with torch.no_grad():  # the conditions under which PyTorch would use its fused softmax kernel
        eval_out = layer(x)
    assert torch.allclose(train_out, eval_out, atol=1e-5)


def test_decoder_layer_self_and_cross_attention(backend):
    torch.manual_seed(0)
    layer = nn.TransformerDecoderLayer(32, 4, dim_feedforward=64, dropout=0.0, batch_first=False)
    layer.self_attn = LiquidMemory.from_mha(layer.self_attn, backend=backend)
    layer.multihead_attn = LiquidMemory.from_mha(layer.multihead_attn, backend=backend)
    tgt, memory = torch.randn(9, 2, 32), torch.randn(14, 2, 32)
    memory_padding = torch.zeros(2, 14, dtype=torch.bool)
    memory_padding[0, 10:] = True
    out = layer(
        tgt, memory, tgt_mask=nn.Transformer.generate_square_subsequent_mask(9), tgt_is_causal=True,
        memory_key_padding_mask=memory_padding,
    )  # fmt: skip
    assert out.shape == tgt.shape
    _finite_backward(out, layer)


def test_full_transformer_with_replace_attention(backend):
    torch.manual_seed(0)
    model = nn.Transformer(
        d_model=32, nhead=4, num_encoder_layers=2, num_decoder_layers=2, dim_feedforward=64, dropout=0.0,
        batch_first=True,
    )  # fmt: skip
    replace_attention(model, backend=backend)
    swapped = [m for m in model.modules() if isinstance(m, LiquidMemory)]
    assert len(swapped) == 2 + 2 * 2 and not any(isinstance(m, nn.MultiheadAttention) for m in model.modules())
    src, tgt = torch.randn(2, 15, 32), torch.randn(2, 8, 32)
    src_padding = torch.zeros(2, 15, dtype=torch.bool)
    src_padding[1, 12:] = True
    tgt_mask = nn.Transformer.generate_square_subsequent_mask(8)
    out = model(src, tgt, tgt_mask=tgt_mask, src_key_padding_mask=src_padding, memory_key_padding_mask=src_padding)
    assert out.shape == tgt.shape
    _finite_backward(out, model)
    model.eval()
    with torch.no_grad():  # eval + padding mask: would take the nested-tensor path without replace_attention
        eval_out = model(
            src, tgt, tgt_mask=tgt_mask, src_key_padding_mask=src_padding, memory_key_padding_mask=src_padding
        )
    assert torch.allclose(eval_out, out.detach(), atol=1e-5)
