"""LiquidMemory on the licensed AOTInductor artifacts: inference equals the reference, training is refused."""

from __future__ import annotations

import pytest
import torch

from liquid_memory import LiquidMemory
from liquid_memory.errors import ArtifactIncompatible
from tests.numerics import rel_err


@pytest.mark.parametrize("mode", ["causal", "bidirectional"])
def test_module_on_aoti_artifact_equals_reference(licensed, mode):
    torch.manual_seed(0)
    module = LiquidMemory(128, 2, batch_first=True, backend="aoti").eval()  # head_dim 64: a shipped artifact
    x = torch.randn(2, 100, 128)
    with torch.no_grad():
        got, _ = module(x, x, x, is_causal=mode == "causal", need_weights=False)
        module.backend = "chunked"
        want, _ = module(x, x, x, is_causal=mode == "causal", need_weights=False)
    assert rel_err(got, want) < 1e-5


def test_aoti_decode_runs_on_the_cpp_step(licensed):
    torch.manual_seed(0)
    module = LiquidMemory(128, 2, batch_first=True, backend="aoti").eval()
    x = torch.randn(1, 40, 128)
    with torch.no_grad():
        full, _ = module(x, x, x, is_causal=True, need_weights=False)
        module.prefill(x[:, :30])
        steps = torch.stack([module.step(x[:, t]) for t in range(30, 40)], dim=1)
    assert rel_err(steps, full[:, 30:]) < 1e-5


def test_aoti_refuses_training(licensed):
    module = LiquidMemory(128, 2, batch_first=True, backend="aoti")
    x = torch.randn(1, 16, 128)
    with pytest.raises(ArtifactIncompatible, match="inference-only"):
        module(x, x, x, is_causal=True, need_weights=False)
