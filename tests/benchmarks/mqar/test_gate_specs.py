"""The -gate specs are their parents plus LiquidMemory's output gate, and nothing else."""

from __future__ import annotations

import torch

from benchmarks.mqar.data import MQARTask
from benchmarks.mqar.models import MODEL_SPECS, ModelShape, build_model
from tests.numerics import rel_err

TASK = MQARTask(seq_len=32, num_kv_pairs=4, vocab_size=64)
SHAPE = ModelShape(d_model=16, n_layers=2, n_heads=2, backend="chunked")
PAIRS = [  # (gate spec, its parent, the read-out norm eps both have)
    ("liquid-qkvconv-u-gate-eps", "liquid-qkvconv-u-eps", 1e-2),
    ("liquid-qkvconv-u-slow-gate-eps", "liquid-qkvconv-u-slow-eps", 1e-2),
    ("liquid-qkvconv-u-gate", "liquid-qkvconv-u", 1e-5),
]


def test_gate_specs_differ_from_their_parent_only_by_the_gate() -> None:
    for name, base, eps in PAIRS:
        spec, parent = MODEL_SPECS[name], MODEL_SPECS[base]
        assert spec.init == parent.init and spec.mixer == parent.mixer
        options = {**spec.options, "liquid_kwargs": dict(spec.options["liquid_kwargs"])}
        assert options["liquid_kwargs"].pop("output_gate") is True
        if not options["liquid_kwargs"]:
            del options["liquid_kwargs"]
        assert options == parent.options  # same convs, same eps: the gate is the only change
        model, ref = build_model(spec, SHAPE, TASK, 0), build_model(parent, SHAPE, TASK, 0)
        assert [b.mixer.memory.out_norm.eps for b in model.blocks] == [eps, eps]
        assert [b.mixer.memory.out_norm.eps for b in ref.blocks] == [eps, eps]
        assert all(b.mixer.memory.gate_proj is not None for b in model.blocks)
        assert all(b.mixer.memory.gate_proj is None for b in ref.blocks)
        ours, theirs = model.state_dict(), ref.state_dict()
        extra = sorted(set(ours) - set(theirs))
        assert extra == [f"blocks.{i}.mixer.memory.gate_proj.weight" for i in range(SHAPE.n_layers)]
        assert set(theirs) <= set(ours) and all(ours[k].shape == v.shape for k, v in theirs.items())


def test_the_gate_scales_the_read_out_in_the_forward() -> None:
    """Parent weights loaded, gate weight zero: σ(0) = 1/2, so each mixer's output is exactly half the parent's."""
    model = build_model(MODEL_SPECS["liquid-qkvconv-u-gate-eps"], SHAPE, TASK, 0)
    ref = build_model(MODEL_SPECS["liquid-qkvconv-u-eps"], SHAPE, TASK, 0)
    with torch.no_grad():  # LiquidLM zero-inits out_proj: perturb every weight so the read-out reaches the output
        for p in ref.parameters():
            p.add_(0.05 * torch.randn(p.shape, generator=torch.Generator().manual_seed(p.numel())))
    missing = model.load_state_dict(ref.state_dict(), strict=False).missing_keys
    assert all(key.endswith("gate_proj.weight") for key in missing) and len(missing) == SHAPE.n_layers
    x = torch.randn(2, TASK.seq_len, SHAPE.d_model, generator=torch.Generator().manual_seed(0))
    for block, ref_block in zip(model.blocks, ref.blocks, strict=True):
        with torch.no_grad():
            block.mixer.memory.gate_proj.weight.zero_()
            gated, _ = block.mixer(x, None, False)
            plain, _ = ref_block.mixer(x, None, False)
            assert plain.abs().max() > 1e-3  # the check must see a real read-out
            assert rel_err(gated, 0.5 * plain) < 1e-6
            block.mixer.memory.gate_proj.weight.normal_(std=1.0)  # a trained gate is not a constant factor
            assert rel_err(block.mixer(x, None, False)[0], 0.5 * plain) > 1e-2
