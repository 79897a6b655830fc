"""The benchmark's greedy-agreement metric (hf/bench.py) on tiny models: identical model -> 1, per prompt."""

from __future__ import annotations

import argparse

import pytest
import torch
from hf_models import tiny_model

from liquid_memory.hf.bench import agreement_shares, greedy_tokens, run


def test_agreement_shares_is_one_for_the_same_model_and_counts_equal_positions():
    model = tiny_model(seed=0)
    other = tiny_model(seed=5)  # different random weights: its greedy tokens differ somewhere
    gen = torch.Generator().manual_seed(0)
    prompts = [torch.randint(3, 61, (6,), generator=gen) for _ in range(3)]
    reference = [greedy_tokens(model, p, 8) for p in prompts]
    same = agreement_shares(model, prompts, reference, 8)
    assert same == {"mean": 1.0, "per_prompt": [1.0, 1.0, 1.0]}
    got = agreement_shares(other, prompts, reference, 8)
    want = [
        sum(a == b for a, b in zip(greedy_tokens(other, p, 8), r, strict=True)) / 8
        for p, r in zip(prompts, reference, strict=True)
    ]
    assert got["per_prompt"] == want and got["mean"] < 1.0


def test_parts_that_compare_against_the_original_need_it_in_models():
    """agreement/decode/noise without `original` in --models: a clear message, not a KeyError."""
    args = argparse.Namespace(models="pure_after", parts="ppl,agreement")
    with pytest.raises(SystemExit, match="add original to --models"):
        run(args)


def test_combine_parts_later_part_wins_and_every_replaced_figure_is_named():
    """Re-measurements replace figures by file-name order; the combine must say which part replaced which."""
    from liquid_memory.hf.bench import combine_parts

    parts = [
        (
            "hf_smollm2.a.json",
            {"perplexity": {"original": {"2048": {"ppl": 16.0}}, "pure_after": {"2048": {"ppl": 34.0}}}},
        ),
        ("hf_smollm2.b.json", {"perplexity": {"pure_after": {"2048": {"ppl": 28.0}}}, "provenance": {"x": "one"}}),
        ("hf_smollm2.c.json", {"provenance": {"x": "two"}, "decode": {"hybrid_liquid": {"1024": {"ms": 1.0}}}}),
        ("hf_smollm2.d.json", {"perplexity": {"original": {"2048": {"ppl": 16.0}}}, "greedy_agreement": {"n": 20}}),
    ]
    result, replaced = combine_parts(parts)
    assert result["perplexity"]["pure_after"]["2048"]["ppl"] == 28.0
    assert result["perplexity"]["original"]["2048"]["ppl"] == 16.0
    assert result["provenance"]["x"] == "two" and result["decode"]["hybrid_liquid"]["1024"]["ms"] == 1.0
    assert replaced == ["perplexity.pure_after: hf_smollm2.b.json replaces hf_smollm2.a.json"]
