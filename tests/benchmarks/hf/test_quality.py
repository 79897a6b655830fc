"""``python -m benchmarks hf-quality`` on tiny models: the greedy-agreement metric (identical model -> 1, per prompt),
the option checks that run before any model loads, and the part combining."""

from __future__ import annotations

import argparse

import pytest
import torch

from benchmarks.__main__ import main
from benchmarks.hf.quality import agreement_shares, greedy_tokens, measure
from tests.hf.hf_models import tiny_model


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
        measure(args)


def test_combine_parts_later_part_wins_and_every_replaced_figure_is_named():
    """Re-measurements replace figures by file-name order; the combine must say which part replaced which."""
    from benchmarks.hf.parts import combine_parts

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


def test_bench_hf_has_its_own_help(capsys):
    with pytest.raises(SystemExit) as info:
        main(["hf-quality", "--help"])
    assert info.value.code == 0 and "--decode-contexts" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["--models", "wide_hybrid_after", "--parts", "ppl"], "--wide-hybrid DIR"),
        (["--models", "hybrid_after,pure_after", "--parts", "ppl"], "--hybrid DIR, --pure DIR"),
        (["--models", "hybrid_afterr", "--parts", "ppl"], "unknown hybrid_afterr"),
        (["--models", "wide_hybrid_after", "--parts", "agreement", "--wide-hybrid", "x"], "add original"),
    ],
)
def test_bench_hf_model_rows_without_their_dir_fail_before_loading(monkeypatch, argv, expected):
    """Every linearized row names the option its DIR comes from, and the check runs before any model loads."""
    import benchmarks.hf.quality as bench

    def no_load(*args, **kwargs):
        raise AssertionError("a model was loaded before the arguments were checked")

    monkeypatch.setattr(bench, "load_smollm2", no_load)
    with pytest.raises(SystemExit) as info:
        main(["hf-quality", *argv])
    assert expected in str(info.value.code)
