"""The built-in extractor on a real ~30k-token document: it finds facts asked for in words the document
does not use (paraphrase), where the BM25 keyword baseline cannot, at >= 20x compression."""

from __future__ import annotations

import asyncio

import pytest
from liquid_memory_proxy.extractors import build_extractor
from liquid_memory_proxy.extractors.scoring import stems
from liquid_memory_proxy.pipeline import CompressionConfig, compress

from benchmarks.proxy.data import answer_found, load_essays, pack_documents

PLANTED = "The quarterly shipment of 412 crates left Rotterdam on 3 March 2021."
CASES = [
    # (question, answer string, sentence holding it)
    (
        "What mischievous hobby did the physicist pursue while building the atomic bomb?",
        "breaking into safes",
        "Richard Feynman used to amuse himself by breaking into safes",
    ),
    ("When did the freight depart from the Dutch port?", "3 March 2021", PLANTED),
]


@pytest.fixture(scope="module")
def long_document() -> str:
    essays = load_essays()
    doc = next(d for d in pack_documents(essays, 32_000) if "gba.txt" in d.essays)
    cut = doc.text.index("\n\n", len(doc.text) // 3)
    return doc.text[:cut] + "\n\n" + PLANTED + "\n\n" + doc.text[cut:]


@pytest.mark.parametrize(("question", "answer", "sentence"), CASES)
def test_paraphrased_fact_found_at_20x(long_document: str, question: str, answer: str, sentence: str) -> None:
    assert not set(stems(question)) & set(stems(sentence)), "the question must share no content word"
    config = CompressionConfig(target_ratio=20.0, max_fact_tokens=None)
    builtin = build_extractor("builtin")
    result = asyncio.run(compress(long_document, question, config, builtin))
    assert result.stats["input_tokens"] > 25_000
    assert result.stats["compression_ratio"] >= 19.0
    assert answer_found(answer, result.fact_pack)
    hit = next(f for f in result.facts if answer in f.text.replace("\n", " "))
    # exact provenance (fact text is the span with whitespace runs collapsed to one space)
    assert " ".join(long_document[hit.start : hit.end].split()) == hit.text and hit.grounded
    baseline = asyncio.run(compress(long_document, question, config, build_extractor("bm25")))
    assert not answer_found(answer, baseline.fact_pack)  # the keyword picker misses it: a real paraphrase


def test_keeps_specifics_and_health() -> None:
    filler = " ".join(f"The meadow {i} was quiet and green in the afternoon light." for i in range(400))
    doc = filler + " Our accountant filed the return late. The penalty came to $1,250 on 14 June 2022. " + filler
    config = CompressionConfig(target_ratio=20.0, max_fact_tokens=None)
    ex = build_extractor("builtin")
    result = asyncio.run(compress(doc, "Did the accountant file the return on time?", config, ex))
    # the neighbour with the amount and the date is kept with the matching sentence, as one fact
    assert "$1,250 on 14 June 2022" in result.fact_pack
    health = asyncio.run(ex.health())
    assert health["ok"] is True and health["extractor"] == "builtin"
