"""Every repair stage: valid JSON → json-repair → regex → raw evidence; nothing silently dropped."""

from __future__ import annotations

import asyncio

import pytest
from liquid_memory_proxy.extractors.base import Extractor
from liquid_memory_proxy.pipeline import ChunkOutput, CompressionConfig, compress, count_tokens
from liquid_memory_proxy.pipeline.repair import repair_output
from liquid_memory_proxy.pipeline.types import Chunk

TEXT = (
    "The harbour opened in 1911. The access code of the northern vault is 7319-KESTREL. "
    "Gulls nest on the roof every spring. Imelda Castellano signed the supply contract."
)
CHUNK = Chunk(index=0, start=0, end=len(TEXT), text=TEXT, n_tokens=40)
Q = "What is the access code of the northern vault?"


@pytest.mark.parametrize(
    ("raw", "status", "expected"),
    [
        ('{"facts": ["The access code of the northern vault is 7319-KESTREL."]}', "ok", ["7319-KESTREL"]),
        ('```json\n{"facts": [{"text": "Vault code 7319-KESTREL"}]}\n```', "ok", ["7319-KESTREL"]),
        ('["Code is 7319-KESTREL", "Harbour opened in 1911"]', "ok", ["7319-KESTREL", "1911"]),
        ('{"facts": []}', "ok", []),
        ('{"facts": ["The code is 7319-KESTREL", "Opened in 1911"', "repaired", ["7319-KESTREL", "1911"]),
        ("{'facts': ['code 7319-KESTREL',], }", "repaired", ["7319-KESTREL"]),
        ('{"facts":[\n {"text":"code 7319-KESTREL"}\n]}\n\n{"data": [1, 2', "repaired", ["7319-KESTREL"]),
        (
            "Sure! Here are the facts:\n- The code is 7319-KESTREL\n- Harbour opened 1911",
            "regex",
            ["7319-KESTREL"],
        ),
        (
            'blah "text": "The code is 7319-KESTREL" } ] garbage {{{ "text": "In 1911',
            "regex",
            ["7319-KESTREL"],
        ),
        ("I cannot help with that.", "raw_evidence", ["7319-KESTREL"]),
        ("", "raw_evidence", ["7319-KESTREL"]),
        (None, "raw_evidence", ["7319-KESTREL"]),
    ],
)
def test_stage(raw: str | None, status: str, expected: list[str]) -> None:
    candidates, got = repair_output(raw, CHUNK, Q, evidence_tokens=24)
    assert got == status
    texts = " | ".join(c["text"] for c in candidates)
    for needle in expected:
        assert needle in texts
    if status == "raw_evidence":
        # verbatim sentences of the chunk, the most question-relevant first choice, within the budget
        for c in candidates:
            assert TEXT[c["start"] : c["end"]] == c["text"]
        assert "Gulls" not in texts  # irrelevant sentences are left out once the budget is used
        assert count_tokens(texts) <= 24
    if not expected:
        assert candidates == []


class Cycling(Extractor):
    """Chunk i answers with stage i % 5: valid JSON, truncated JSON, bullets, prose, exception."""

    name = "cycling"

    async def extract_chunk(self, chunk, question):  # noqa: ANN001
        first = chunk.text.split(". ")[0].strip().rstrip(".")
        stage = chunk.index % 5
        if stage == 4:
            raise ConnectionError("extractor down")
        raw = [f'{{"facts": ["{first}"]}}', f'{{"facts": ["{first}"', f"- {first}", "no idea, sorry"][stage]
        return ChunkOutput(chunk=chunk.index, raw=raw)

    async def health(self):
        return {"ok": True}


def test_every_stage_counted_through_compress() -> None:
    sentences = [f"Record {i} says the reactor number {i} started in {1950 + i} at site {i}." for i in range(60)]
    doc = " ".join(sentences)
    config = CompressionConfig(chunk_tokens=64, overlap_tokens=0, target_ratio=None)
    result = asyncio.run(compress(doc, "When did the reactor start?", config, Cycling()))
    s = result.stats
    n = s["chunks_total"]
    assert n >= 10
    expect = {k: sum(1 for i in range(n) if i % 5 == k) for k in range(5)}
    assert (s["chunks_ok"], s["chunks_repaired"], s["chunks_regex"]) == (expect[0], expect[1], expect[2])
    assert s["chunks_raw_evidence"] == s["chunks_failed"] == expect[3] + expect[4]
    assert s["chunks_errored"] == expect[4]
    assert {f.status for f in result.facts} == {"ok", "repaired", "regex", "raw_evidence"}
    # nothing silently dropped: every chunk contributed at least one fact, each grounded in the document
    assert {c for f in result.facts for c in f.chunks} == set(range(n))
    for f in result.facts:
        assert f.grounded and f.start < f.end and f.chunk in f.chunks
