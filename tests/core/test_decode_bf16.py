"""The decode step's serving details: one intra-op thread for small batches (the setting is restored) and the
fp32 copy of a bf16 decay weight, kept between steps, follows every change of the weight."""

from __future__ import annotations

import torch

from liquid_memory import LiquidMemory


def test_step_restores_the_thread_setting():
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        layer = LiquidMemory(32, 4, batch_first=True, backend="reference").eval()
        with torch.no_grad():
            layer.step(torch.randn(2, 32))
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)


def test_bf16_decay_copy_follows_the_weight():
    torch.manual_seed(0)
    layer = LiquidMemory(32, 4, batch_first=True, backend="reference", dtype=torch.bfloat16).eval()
    x = torch.randn(3, 32, dtype=torch.bfloat16)
    with torch.no_grad():
        first = layer._log_decay(x[None])
        layer.decay_proj.weight.add_(0.5)  # in place: the version counter moves, the kept copy must too
        second = layer._log_decay(x[None])
        fresh = LiquidMemory(32, 4, batch_first=True, backend="reference", dtype=torch.bfloat16).eval()
        fresh.load_state_dict(layer.state_dict())
        assert not torch.equal(first, second)
        assert torch.equal(second, fresh._log_decay(x[None]))
