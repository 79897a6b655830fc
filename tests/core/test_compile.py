"""torch.compile(fullgraph=True) of models that use LiquidMemory gives the eager outputs and gradients."""

from __future__ import annotations

import torch
from torch import nn

from liquid_memory import LiquidMemory
from tests.numerics import rel_err


class TinyCausalLM(nn.Module):
    def __init__(self, backend: str) -> None:
        super().__init__()
        self.attn = LiquidMemory(64, 4, batch_first=True, backend=backend)
        self.ff = nn.Sequential(nn.LayerNorm(64), nn.Linear(64, 128), nn.GELU(), nn.Linear(128, 64))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y, _ = self.attn(x, x, x, is_causal=True, need_weights=False)
        return self.ff(x + y)


def test_compile_fullgraph_forward_and_backward(licensed):
    backend = "cpp"
    torch._dynamo.reset()
    torch.manual_seed(0)
    model = TinyCausalLM(backend)
    x = torch.randn(2, 100, 64, requires_grad=True)
    eager = model(x)
    eager.sum().backward()
    eager_grads = [p.grad.clone() for p in model.parameters()]
    model.zero_grad()
    compiled = torch.compile(model, fullgraph=True)
    x2 = x.detach().clone().requires_grad_(True)
    out = compiled(x2)
    out.sum().backward()
    assert rel_err(out, eager) < 1e-5
    for got, want in zip([p.grad for p in model.parameters()], eager_grads, strict=True):
        assert rel_err(got, want) < 1e-4
    assert rel_err(x2.grad, x.grad) < 1e-4


def test_compile_bidirectional_and_cross(licensed):
    backend = "cpp"
    torch._dynamo.reset()
    torch.manual_seed(0)
    module = LiquidMemory(32, 2, batch_first=True, backend=backend)
    x, mem = torch.randn(1, 40, 32), torch.randn(1, 23, 32)

    def both(x, mem):
        return module(x, x, x, need_weights=False)[0], module(x, mem, mem, need_weights=False)[0]

    compiled = torch.compile(both, fullgraph=True)
    for got, want in zip(compiled(x, mem), both(x, mem), strict=True):
        assert rel_err(got, want) < 1e-5


def test_compile_chunked_reference_forward():
    """The pure-PyTorch path compiles too (its chunk loop becomes a ``scan``); forward only, it is slow to build."""
    torch._dynamo.reset()
    torch.manual_seed(0)
    module = LiquidMemory(32, 2, batch_first=True, backend="chunked")
    x = torch.randn(1, 70, 32)
    compiled = torch.compile(lambda x: module(x, x, x, is_causal=True, need_weights=False)[0], fullgraph=True)
    with torch.no_grad():
        assert rel_err(compiled(x), module(x, x, x, is_causal=True, need_weights=False)[0]) < 1e-5
