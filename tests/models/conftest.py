"""LiquidLM test fixtures: tiny configurations and a development licence for the compiled ``cpp`` backend."""

from __future__ import annotations

import torch

from liquid_memory.models import LiquidLM, LiquidLMConfig


def tiny_config(mixer: str, **overrides) -> LiquidLMConfig:
    fields = dict(vocab_size=40, d_model=32, n_layers=2, n_heads=2, mixer=mixer, ffn_dim=48, max_seq_len=64)
    if mixer == "liquid":
        fields["backend"] = "chunked"
    fields.update(overrides)
    return LiquidLMConfig(**fields)


def randomized_model(config: LiquidLMConfig, seed: int = 0) -> LiquidLM:
    """A model whose zero-initialised projections are perturbed too, so every path carries signal."""
    torch.manual_seed(seed)
    model = LiquidLM(config)
    with torch.no_grad():
        for param in model.parameters():
            param.add_(torch.randn_like(param) * 0.1)
    return model.eval()
