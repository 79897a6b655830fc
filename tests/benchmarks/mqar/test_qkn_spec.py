"""The -qkn spec is its parent plus LiquidMemory's qk_norm, and nothing else. (LiquidLM with these options
against the float64 recomputation and decode == parallel forward: tests/models/test_model.py VARIANTS.)"""

from __future__ import annotations

import torch

from benchmarks.mqar.data import MQARTask
from benchmarks.mqar.models import MODEL_SPECS, ModelShape, build_model
from tests.numerics import rel_err

TASK = MQARTask(seq_len=32, num_kv_pairs=4, vocab_size=64)
SHAPE = ModelShape(d_model=16, n_layers=2, n_heads=2, backend="chunked")


def test_qkn_spec_differs_from_its_parent_only_by_qk_norm() -> None:
    spec, parent = MODEL_SPECS["liquid-qkvconv-u-gate-eps-qkn"], MODEL_SPECS["liquid-qkvconv-u-gate-eps"]
    assert spec.init == parent.init and spec.mixer == parent.mixer
    options = {**spec.options, "liquid_kwargs": dict(spec.options["liquid_kwargs"])}
    assert options["liquid_kwargs"].pop("qk_norm") is True
    assert options == parent.options
    model, ref = build_model(spec, SHAPE, TASK, 0), build_model(parent, SHAPE, TASK, 0)
    assert [b.mixer.memory.qk_norm for b in model.blocks] == [True, True]
    assert [b.mixer.memory.qk_norm for b in ref.blocks] == [False, False]
    ours, theirs = model.state_dict(), ref.state_dict()  # same seed, same parameters: identical init
    assert ours.keys() == theirs.keys() and all(torch.equal(ours[k], theirs[k]) for k in ours)
    with torch.no_grad():  # LiquidLM zero-inits out_proj: perturb so each mixer's read-out reaches its output
        for p, q in zip(model.parameters(), ref.parameters(), strict=True):
            noise = 0.05 * torch.randn(p.shape, generator=torch.Generator().manual_seed(p.numel()))
            p.add_(noise)
            q.add_(noise)
    x = torch.randn(2, TASK.seq_len, SHAPE.d_model, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        block, ref_block = model.blocks[0], ref.blocks[0]
        assert rel_err(block.mixer(x, None, False)[0], ref_block.mixer(x, None, False)[0]) > 1e-2
        ref_block.mixer.memory.qk_norm = True  # the only difference: switching it on makes them equal
        assert rel_err(block.mixer(x, None, False)[0], ref_block.mixer(x, None, False)[0]) < 1e-6
