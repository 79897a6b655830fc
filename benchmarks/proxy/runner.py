"""Run one extractor over the question set at one target compression ratio and measure it."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from liquid_memory_proxy.extractors.base import Extractor
from liquid_memory_proxy.pipeline import CompressionConfig, ExtractionFailed, compress

from benchmarks.proxy.data import Document, Question, answer_found


@dataclass
class RowResult:
    extractor: str
    docs: str
    target_ratio: float | None
    n: int = 0
    hits: int = 0
    n_para: int = 0
    hits_para: int = 0
    ratios: list[float] = field(default_factory=list)
    seconds: list[float] = field(default_factory=list)
    tokens: list[int] = field(default_factory=list)
    chunks: int = 0
    chunks_not_ok: int = 0
    chunks_raw_evidence: int = 0
    facts: int = 0
    facts_ungrounded: int = 0
    failures: int = 0
    misses: list[str] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        direct = self.n - self.n_para
        secs = sorted(self.seconds) or [0.0]
        return {
            "extractor": self.extractor,
            "docs": self.docs,
            "target_ratio": self.target_ratio,
            "questions": self.n,
            "recall": round(self.hits / max(1, self.n), 4),
            "recall_direct": round((self.hits - self.hits_para) / direct, 4) if direct else None,
            "recall_paraphrase": round(self.hits_para / self.n_para, 4) if self.n_para else None,
            "paraphrase_questions": self.n_para,
            "compression_mean": round(sum(self.ratios) / max(1, len(self.ratios)), 2),
            "compression_min": round(min(self.ratios, default=0.0), 2),
            "doc_tokens_mean": round(sum(self.tokens) / max(1, len(self.tokens))),
            "seconds_mean": round(sum(secs) / len(secs), 3),
            "seconds_max": round(secs[-1], 3),
            "seconds_per_10k_tokens": round(10_000 * sum(self.seconds) / max(1, sum(self.tokens)), 3),
            "chunks": self.chunks,
            "chunk_not_valid_json_rate": round(self.chunks_not_ok / max(1, self.chunks), 4),
            "chunk_raw_evidence_rate": round(self.chunks_raw_evidence / max(1, self.chunks), 4),
            "facts": self.facts,
            "ungrounded_fact_rate": round(self.facts_ungrounded / max(1, self.facts), 4),
            "extraction_failures": self.failures,
            "misses": self.misses,
        }


async def run_row(
    extractor: Extractor,
    label: str,
    questions: list[Question],
    doc_of: dict[str, Document],
    target_ratio: float | None,
    docs_label: str,
    chunk_tokens: int = 512,
) -> RowResult:
    """Compress each question's document for it and check the answer string reaches the fact pack."""
    row = RowResult(label, docs_label, target_ratio)
    config = CompressionConfig(chunk_tokens=chunk_tokens, target_ratio=target_ratio, max_fact_tokens=None)
    for q in questions:
        doc = doc_of[q.essay]
        row.n += 1
        row.n_para += q.paraphrase
        t0 = time.perf_counter()
        try:
            result = await compress(doc.text, q.question, config, extractor)
        except ExtractionFailed as exc:
            row.seconds.append(time.perf_counter() - t0)
            row.tokens.append(doc.n_tokens)
            row.failures += 1
            row.chunks += int(exc.stats.get("chunks_total", 0))
            row.chunks_not_ok += int(exc.stats.get("chunks_total", 0))
            row.chunks_raw_evidence += int(exc.stats.get("chunks_total", 0))
            row.misses.append(q.id)
            continue
        row.seconds.append(time.perf_counter() - t0)
        row.tokens.append(result.stats["input_tokens"])
        row.ratios.append(result.stats["compression_ratio"])
        row.chunks += result.stats["chunks_total"]
        row.chunks_not_ok += result.stats["chunks_total"] - result.stats["chunks_ok"]
        row.chunks_raw_evidence += result.stats["chunks_raw_evidence"]
        generated = [f for f in result.facts if f.status != "raw_evidence"]
        row.facts += len(generated)
        row.facts_ungrounded += sum(not f.grounded for f in generated)
        if answer_found(q.answer, result.fact_pack):
            row.hits += 1
            row.hits_para += q.paraphrase
        else:
            row.misses.append(q.id)
    return row
