"""Pipeline tests: token-aware chunking with overlap and exact spans, merge/dedupe with provenance,
budgets, limits, and the all-chunks-failed error — driven through `compress` with a scripted extractor."""

from __future__ import annotations

import asyncio
import json
import random

import pytest
from liquid_memory_proxy.extractors.base import Extractor
from liquid_memory_proxy.pipeline import (
    ChunkOutput,
    CompressionConfig,
    ExtractionFailed,
    InputTooLarge,
    InvalidInput,
    compress,
    count_tokens,
)
from liquid_memory_proxy.pipeline.chunking import chunk_document
from liquid_memory_proxy.pipeline.tokens import encode

WORDS = "alpha beta gamma delta river stone 1987 Oslo $4.2 million orchard lantern copper".split()


def random_text(seed: int, sentences: int) -> str:
    rng = random.Random(seed)
    out = []
    for _ in range(sentences):
        words = [rng.choice(WORDS) for _ in range(rng.randint(4, 18))]
        out.append(" ".join(words).capitalize() + rng.choice([".", ".", "!", "?"]))
        if rng.random() < 0.1:
            out.append("\n\n")
    return " ".join(out)


class Scripted(Extractor):
    """Returns a fixed raw output (or error) per chunk index; records the concurrency it saw."""

    name = "scripted"

    def __init__(self, outputs) -> None:  # noqa: ANN001
        self.outputs = outputs
        self.in_flight = 0
        self.max_in_flight = 0

    async def extract_chunk(self, chunk, question):  # noqa: ANN001
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        await asyncio.sleep(0.01)
        self.in_flight -= 1
        out = self.outputs(chunk)
        if isinstance(out, Exception):
            raise out
        return ChunkOutput(chunk=chunk.index, raw=out)

    async def health(self):
        return {"ok": True}


@pytest.mark.parametrize("seed", range(6))
def test_chunks_are_token_bounded_overlapping_and_exact(seed: int) -> None:
    doc = random_text(seed, 120)
    size, overlap = 64, 8
    chunks, n_tokens = chunk_document(doc, size, overlap)
    offsets = encode(doc).offsets
    assert n_tokens == len(offsets) and len(chunks) > 3
    start_tok = {s: i for i, (s, _) in enumerate(offsets)}
    end_tok = {e: i + 1 for i, (_, e) in enumerate(offsets)}
    for k, c in enumerate(chunks):
        assert c.index == k and c.text == doc[c.start : c.end]
        assert c.n_tokens == end_tok[c.end] - start_tok[c.start] <= size
        assert count_tokens(c.text) == c.n_tokens
        if k + 1 < len(chunks):
            nxt = chunks[k + 1]
            assert end_tok[c.end] - start_tok[nxt.start] == overlap  # exactly `overlap` shared tokens
            assert c.text[-1] in ".!?"  # cut at a sentence end (there is always one in a 64-token window)
    assert chunks[0].start == offsets[0][0] and chunks[-1].end == offsets[-1][1]


def test_one_chunk_for_short_text_and_limits() -> None:
    chunks, n = chunk_document("Just one sentence.", 64, 8)
    assert len(chunks) == 1 and chunks[0].text == "Just one sentence." and n == count_tokens("Just one sentence.")
    with pytest.raises(InputTooLarge, match="chunks"):
        chunk_document(random_text(1, 200), 32, 4, max_chunks=3)


def test_merge_dedupes_with_provenance_and_runs_concurrently() -> None:
    doc = random_text(3, 80) + " The vault code is 7319-KESTREL. " + random_text(4, 80)
    fact = "The vault code is 7319-KESTREL."

    def outputs(chunk):  # noqa: ANN001
        # every chunk reports the fact if it sees it; chunk 0 also reports a sentence of its own
        facts = [fact] if fact in chunk.text else []
        if chunk.index == 0:
            facts.append(chunk.text.split(".")[0] + ".")
        return json.dumps({"facts": facts})

    config = CompressionConfig(chunk_tokens=48, overlap_tokens=20, target_ratio=None, concurrency=4)
    ex = Scripted(outputs)
    result = asyncio.run(compress(doc, "What is the vault code?", config, ex))
    assert ex.max_in_flight == 4
    code = [f for f in result.facts if "7319-KESTREL" in f.text]
    assert len(code) == 1, "near-duplicates from overlapping chunks must merge"
    f = code[0]
    assert doc[f.start : f.end] == fact and f.grounded and f.status == "ok"
    assert len(f.chunks) >= 2 and f.chunk in f.chunks  # provenance keeps every source chunk
    assert result.stats["duplicates_merged"] >= 1
    assert f"[{f.chunk}@{f.start}-{f.end}] {fact}" in result.fact_pack
    assert "{" not in result.fact_pack  # compact lines, not JSON
    assert result.stats["forwarded_tokens"] == count_tokens(result.fact_pack)
    assert result.stats["input_tokens"] == count_tokens(doc)
    assert result.stats["compression_ratio"] == pytest.approx(
        result.stats["input_tokens"] / result.stats["forwarded_tokens"], rel=1e-2
    )


def test_budget_drops_are_counted_not_silent() -> None:
    doc = random_text(5, 300)
    sentences = [s.strip() + "." for s in doc.split(".") if len(s.split()) > 3]

    def outputs(chunk):  # noqa: ANN001
        mine = [s for s in sentences if s in chunk.text][:5]
        return json.dumps({"facts": mine})

    config = CompressionConfig(chunk_tokens=64, overlap_tokens=0, target_ratio=40.0, min_fact_tokens=16)
    result = asyncio.run(compress(doc, "q", config, Scripted(outputs)))
    s = result.stats
    assert s["facts_dropped_budget"] > 0
    assert s["facts_kept"] + s["facts_dropped_budget"] + s["duplicates_merged"] == s["facts_total"]
    assert s["compression_ratio"] >= 30


def test_every_chunk_failing_raises_and_stats_say_why() -> None:
    doc = random_text(6, 60)
    config = CompressionConfig(chunk_tokens=64, overlap_tokens=8)
    with pytest.raises(ExtractionFailed) as info:
        asyncio.run(compress(doc, "q", config, Scripted(lambda c: TimeoutError("model timed out"))))
    stats = info.value.stats
    assert stats["chunks_failed"] == stats["chunks_total"] == stats["chunks_errored"] > 1


def test_some_chunks_failing_keeps_going_with_raw_evidence() -> None:
    doc = "The copper lantern was sold in 1987 for $4.2 million. " + random_text(7, 60)
    config = CompressionConfig(chunk_tokens=64, overlap_tokens=8, target_ratio=None)

    def outputs(chunk):  # noqa: ANN001
        return RuntimeError("boom") if chunk.index == 0 else '{"facts": []}'

    result = asyncio.run(compress(doc, "When was the copper lantern sold?", config, Scripted(outputs)))
    assert result.stats["chunks_errored"] == 1 and result.stats["chunks_raw_evidence"] == 1
    raw = [f for f in result.facts if f.status == "raw_evidence"]
    assert raw and "1987" in raw[0].text and "(raw excerpt)" in result.fact_pack


def test_bad_input_errors() -> None:
    ex = Scripted(lambda c: "{}")
    with pytest.raises(InvalidInput, match="empty"):
        asyncio.run(compress("   ", "q", CompressionConfig(), ex))
    with pytest.raises(InputTooLarge, match="tokens"):
        asyncio.run(compress(random_text(8, 50), "q", CompressionConfig(max_document_tokens=50), ex))
    with pytest.raises(InvalidInput, match="overlap"):
        asyncio.run(compress("text.", "q", CompressionConfig(chunk_tokens=64, overlap_tokens=40), ex))
