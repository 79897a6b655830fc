"""The long-context retrieval evaluation: seeded cases, prompts within their length with the fact at its depth,
exact-match scoring, the row syntax (memory settings, ``weights=``; clear errors before anything runs) and the
results table (``benchmarks/hf/retrieval*.py``)."""

from __future__ import annotations

import argparse

import pytest

from benchmarks.hf.retrieval import parse_row
from benchmarks.hf.retrieval_data import PromptBuilder, found, make_cases, score, split_sentences
from benchmarks.hf.retrieval_report import table_lines


@pytest.fixture(scope="module")
def tokenizer():
    from liquid_memory.hf.smollm import load_smollm2

    return load_smollm2()[1]


@pytest.fixture(scope="module")
def essays() -> list[str]:
    from liquid_memory.data.essays import joined, train_heldout_split

    return split_sentences(joined(train_heldout_split()[1]))


def test_cases_are_a_function_of_the_seed():
    def cases(seed: int) -> list:
        return make_cases(seed, [1024, 2048], [0.1, 0.9], 2, multikey_facts=4, essay_sentences=500)

    a, b = cases(0), cases(1)
    assert [c.to_json() for c in a] == [c.to_json() for c in cases(0)]
    assert [c.answer for c in a] != [c.answer for c in b]
    assert len(a) == 3 * 2 * 2 * 2
    for case in a:
        if case.task == "multikey":
            assert len(set(case.distractors) | {case.answer}) == 4  # distinct codes
            asked = next(i for i, f in enumerate(case.facts) if case.answer in f)
            assert case.fact_depths[asked] == case.depth
    with pytest.raises(ValueError, match="unknown task"):
        make_cases(0, [1024], [0.5], 1, tasks=("riddle",))


@pytest.mark.parametrize("task", ["passkey", "needle", "multikey"])
@pytest.mark.parametrize("depth", [0.1, 0.5, 0.9])
def test_prompt_fits_its_length_and_holds_the_fact_at_its_depth(tokenizer, essays, task, depth):
    case = next(c for c in make_cases(3, [1024], [depth], 1, (task,), 4, len(essays)))
    ids = PromptBuilder(tokenizer, essays).ids(case)
    assert 1024 - 64 <= len(ids) <= 1024
    text = tokenizer.decode(ids)
    asked = next(f for f in case.facts if case.answer in f)
    assert text.count(asked) == 1 and text.endswith(case.answer_prefix)
    haystack_start, haystack_end = text.index("\n\n") + 2, text.rindex("\n\n")
    share = (text.index(asked) - haystack_start) / (haystack_end - haystack_start)
    assert abs(share - depth) < 0.1, share  # characters, a proxy for the token share the case asks for
    if task == "needle":  # the needle's haystack is the held-out prose passed in
        assert any(s in text for s in essays[case.haystack_start : case.haystack_start + 3])


def test_a_length_without_room_for_a_haystack_is_refused(tokenizer, essays):
    case = make_cases(0, [40], [0.5], 1, ("passkey",))[0]
    with pytest.raises(ValueError, match="no room for a haystack"):
        PromptBuilder(tokenizer, essays).ids(case)


def test_exact_match_scoring():
    assert found("The pass key is 71432. Remember", "71432")
    assert not found("714320", "71432") and not found("7143", "71432") and not found("", "71432")
    assert found("inside a Blue teapot!", "blue teapot") and not found("blue teapots", "blue teapot")
    case = make_cases(0, [1024], [0.5], 1, ("multikey",))[0]
    assert score(f"is {case.distractors[0]}.", case) == {"hit": False, "distractor": True}
    assert score(f"is {case.answer}.", case)["hit"]


def test_rows_take_memory_settings_and_a_weight_format():
    assert parse_row("orig8=original:weights=int8") == ("orig8", "original", {"weights": "int8"})
    assert parse_row("gc=/m/dir:global_cache=64,cache_score=recall,mode=window,weights=bf16") == (
        "gc", "/m/dir", {"global_cache": 64, "cache_score": "recall", "mode": "window", "weights": "bf16"})  # fmt: skip


@pytest.mark.parametrize(
    ("row", "message"),
    [
        ("o=original:mode=window", "takes only weights="),
        ("h=/models/h:weights=int4", "weights must be one of"),
        ("h=/models/h:colour=red", "unknown setting"),
        ("h=/models/h:global_cache", "unknown setting"),
        ("no-source", "expected NAME=SOURCE"),
        ("=dir", "expected NAME=SOURCE"),
    ],
)
def test_bad_rows_are_refused_before_anything_runs(row, message):
    with pytest.raises(argparse.ArgumentTypeError, match=message):
        parse_row(row)


def _row(hits: dict[str, float], ppl: float, state: float) -> dict:
    per_length = {k: {"state_bytes": state * 2**20, "decode_ms_per_token": 10.0} for k in hits}
    return {"summary": {"tasks": {"passkey": {"hit_rate": hits}}, "per_length": per_length,
                        "perplexity": {"512": ppl}}}  # fmt: skip


def test_table_puts_the_original_first_marks_unmeasured_cells_and_states_the_longest_length():
    rows = {"hybrid": _row({"1024": 0.0}, 25.0, 6.0), "original": _row({"1024": 1.0, "8192": 0.5}, 20.0, 300.0)}
    lines = table_lines({"rows": rows})
    assert lines[0].split(" | ")[1:3] == ["ppl 512 (×orig)", "passkey 1K"]
    original, hybrid = (line.split(" | ") for line in lines[2:])
    assert original[1:4] == ["20.00 (1.000×)", "100", "50"] and original[4] == "300.0 (8K)"
    assert hybrid[1:4] == ["25.00 (1.250×)", "0", "–"] and hybrid[4] == "6.0 (1K)"


def test_a_prompt_scored_row_is_scored_for_perplexity_without_seeing_the_future(monkeypatch):
    """A ``"prompt"`` cache is chosen by a call's last queries; held-out perplexity (one call per window) must use
    the streaming score, and the row keeps its own score afterwards."""
    import torch

    import benchmarks.hf.quality as quality
    import liquid_memory.hf.smollm as smollm
    from benchmarks.hf.retrieval import heldout_perplexity
    from liquid_memory.hf import patch_model
    from tests.hf.hf_models import tiny_model

    model = tiny_model("llama")
    patch_model(model, window=4, backend="naive", global_cache=2, cache_score="prompt")
    seen = []

    def recording(model, ids, context, max_tokens):
        seen.append({layer.self_attn.cache_score for layer in model.model.layers})
        return {"ppl": 1.0}

    monkeypatch.setattr(quality, "perplexity", recording)
    monkeypatch.setattr(smollm, "essay_token_ids", lambda tokenizer, split: torch.arange(64))
    assert heldout_perplexity(model, None, [16, 32], 64) == {"16": 1.0, "32": 1.0}
    assert seen == [{"attention"}, {"attention"}]
    assert {layer.self_attn.cache_score for layer in model.model.layers} == {"prompt"}


def _case(depth: float, answer: str, hit: bool) -> dict:
    return {"task": "passkey", "length": 1024, "depth": depth, "facts": [f"key {answer}"], "question": "q?",
            "answer": answer, "hit": hit, "distractor": False, "decode_ms": 1.0, "state_bytes": 10,
            "prompt_tokens": 1000, "prefill_s": 1.0}  # fmt: skip


def test_rows_with_fewer_prompts_per_cell_are_compared_with_the_original_on_the_same_prompts(tmp_path):
    import json

    from benchmarks.hf.retrieval_report import SAME_PROMPTS, summarise, write_summary

    def row(name, per_cell, cases):
        return {"name": name, "model": {}, "date": "d", "machine": {}, "seed": 0, "per_cell": per_cell,
                "cases": cases, "summary": {**summarise(cases), "perplexity": {"512": 20.0}}}  # fmt: skip

    original = [_case(0.1, "11111", True), _case(0.1, "22222", False), _case(0.5, "33333", False),
                _case(0.5, "44444", False)]  # fmt: skip
    linear = [_case(0.1, "11111", True), _case(0.5, "33333", True)]
    for r in (row("original", 2, original), row("hybrid", 1, linear)):
        (tmp_path / f"{r['name']}.json").write_text(json.dumps(r))
    rows = write_summary(tmp_path)["rows"]
    assert rows["original"]["summary"]["tasks"]["passkey"]["hit_rate"]["1024"] == 0.25
    assert rows[SAME_PROMPTS]["summary"]["tasks"]["passkey"]["hit_rate"]["1024"] == 0.5  # hit 11111, missed 33333
    assert rows[SAME_PROMPTS]["summary"]["tasks"]["passkey"]["n"]["1024"] == 2
    names = [line.split(" | ")[0].lstrip("| ") for line in table_lines({"rows": rows})[2:]]
    assert names == ["original", SAME_PROMPTS, "hybrid"]
