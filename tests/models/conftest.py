"""LiquidLM test fixtures: tiny configurations and a development licence for the compiled ``cpp`` backend."""

from __future__ import annotations

import functools

import pytest
import torch

from liquid_memory.models import LiquidLM, LiquidLMConfig


@functools.cache
def _dev_licence() -> str:
    from liquid_memory_vendor.dev import issue_dev_licence

    return issue_dev_licence(("kernel",), licensee="Liquid Memory LiquidLM tests")


@pytest.fixture
def licensed(monkeypatch):
    """A valid development licence in LM_PRIVATE_KEY for one test (the README demo's path)."""
    from liquid_memory.licensing import reset_cache

    monkeypatch.setenv("LM_PRIVATE_KEY", _dev_licence())
    monkeypatch.delenv("LM_BACKEND", raising=False)
    reset_cache()
    yield
    reset_cache()


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
