"""Specs that are their parent plus one LiquidMemory option, and nothing else: ``-qkn`` adds qk_norm (LiquidLM with
these options against the float64 recomputation and decode == parallel forward: tests/models/test_model.py
VARIANTS), ``-qkn-delta`` adds delta_rule (the delta rule itself against its oracle, a float64 recomputation and
decode: tests/core/test_delta_rule.py)."""

from __future__ import annotations

import torch

from benchmarks.mqar.data import MQARTask
from benchmarks.mqar.models import MODEL_SPECS, ModelShape, build_model
from tests.numerics import rel_err

TASK = MQARTask(seq_len=32, num_kv_pairs=4, vocab_size=64)
SHAPE = ModelShape(d_model=16, n_layers=2, n_heads=2, backend="chunked")


def _built_with_one_option_more(name: str, parent_name: str, option: str) -> tuple[torch.nn.Module, torch.nn.Module]:
    """Both specs built at seed 0, after checking that ``name``'s options are its parent's plus ``option=True``."""
    spec, parent = MODEL_SPECS[name], MODEL_SPECS[parent_name]
    assert spec.init == parent.init and spec.mixer == parent.mixer
    options = {**spec.options, "liquid_kwargs": dict(spec.options["liquid_kwargs"])}
    assert options["liquid_kwargs"].pop(option) is True
    assert options == parent.options
    model, ref = build_model(spec, SHAPE, TASK, 0), build_model(parent, SHAPE, TASK, 0)
    assert [getattr(b.mixer.memory, option) for b in model.blocks] == [True, True]
    assert [getattr(b.mixer.memory, option) for b in ref.blocks] == [False, False]
    return model, ref


def test_qkn_spec_differs_from_its_parent_only_by_qk_norm() -> None:
    model, ref = _built_with_one_option_more("liquid-qkvconv-u-gate-eps-qkn", "liquid-qkvconv-u-gate-eps", "qk_norm")
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


def test_delta_spec_differs_from_its_parent_only_by_delta_rule() -> None:
    model, ref = _built_with_one_option_more(
        "liquid-qkvconv-u-gate-eps-qkn-delta", "liquid-qkvconv-u-gate-eps-qkn", "delta_rule"
    )
    ours, theirs = model.state_dict(), ref.state_dict()
    extra = {k for k in ours if ".beta_proj." in k}  # the only new parameters: β's projection, 2 per layer
    assert len(extra) == 4 and ours.keys() - extra == theirs.keys()
    assert all(torch.equal(ours[k], theirs[k]) for k in theirs)  # same seed: every shared parameter identical
    with torch.no_grad():  # LiquidLM zero-inits out_proj: perturb so each mixer's read-out reaches its output
        for name, p in model.named_parameters():
            noise = 0.05 * torch.randn(p.shape, generator=torch.Generator().manual_seed(p.numel()))
            p.add_(noise)
            if name in theirs:
                ref.get_parameter(name).add_(noise)
    ids = torch.randint(0, TASK.vocab_size, (2, TASK.seq_len), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        ours_logits, theirs_logits = model(ids, use_cache=False)[0], ref(ids, use_cache=False)[0]
    assert rel_err(ours_logits, theirs_logits) > 1e-3  # the delta rule changes what the model computes
    model.eval()  # use_cache defaults to True outside training
    with torch.no_grad():  # and the decode path of the spec continues its parallel forward
        head, state = model(ids[:, :20])
        tail, _ = model(ids[:, 20:], state=state)
    assert rel_err(torch.cat([head, tail], dim=1), ours_logits) < 1e-4
