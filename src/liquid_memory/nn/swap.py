"""Swap every ``nn.MultiheadAttention`` in a model for a ``LiquidMemory`` carrying its weights."""

from __future__ import annotations

from torch import nn

from liquid_memory.nn.liquid_memory import LiquidMemory


def replace_attention(model: nn.Module, **liquid_kwargs) -> nn.Module:
    """In place: MHA → ``LiquidMemory.from_mha``; also turns off ``nn.TransformerEncoder``'s nested-tensor
    fast path, which only exists for softmax attention. Returns ``model``."""
    for module in model.modules():
        if isinstance(module, nn.TransformerEncoder):
            module.use_nested_tensor = False
        for name, child in list(module.named_children()):
            if isinstance(child, nn.MultiheadAttention):
                setattr(module, name, LiquidMemory.from_mha(child, **liquid_kwargs))
    if isinstance(model, nn.MultiheadAttention):
        raise TypeError("pass the model that contains the attention; use LiquidMemory.from_mha for a single layer")
    return model
