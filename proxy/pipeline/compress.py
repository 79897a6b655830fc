"""The compression pipeline: chunk → extract concurrently → repair → merge/dedupe → budget → fact pack."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from liquid_memory_proxy.pipeline.chunking import chunk_document
from liquid_memory_proxy.pipeline.factpack import render_fact_pack
from liquid_memory_proxy.pipeline.merge import dedupe, to_facts
from liquid_memory_proxy.pipeline.repair import repair_output
from liquid_memory_proxy.pipeline.tokens import count_tokens, count_tokens_batch
from liquid_memory_proxy.pipeline.types import (
    FACT_STATUSES,
    CompressionConfig,
    CompressionResult,
    ExtractionFailed,
    Fact,
    InputTooLarge,
    InvalidInput,
)

if TYPE_CHECKING:
    from liquid_memory_proxy.extractors.base import Extractor


def fact_budget(input_tokens: int, config: CompressionConfig) -> int:
    """Tokens the facts may use: input/target_ratio, capped by max_fact_tokens, at least min_fact_tokens."""
    budget = config.max_fact_tokens if config.max_fact_tokens is not None else input_tokens
    if config.target_ratio is not None:
        budget = min(budget, int(input_tokens / config.target_ratio))
    return max(budget, config.min_fact_tokens)


def _apply_budget(facts: list[Fact], budget: int) -> tuple[list[Fact], int]:
    """Best-scoring facts that fit in `budget` tokens; returns (kept, number dropped)."""
    sizes = count_tokens_batch([f.text for f in facts])
    kept, used = [], 0
    for f, n in sorted(zip(facts, sizes, strict=True), key=lambda p: (-p[0].score, p[0].start)):
        if used + n + 8 > budget and kept:  # ~8 tokens of provenance tag per line
            continue
        kept.append(f)
        used += n + 8
    return kept, len(facts) - len(kept)


async def compress(document: str, question: str, config: CompressionConfig, extractor: Extractor) -> CompressionResult:
    """Compress `document` into a compact fact pack relevant to `question`.

    Raises InvalidInput (empty document, bad config), InputTooLarge (per-request limits) or
    ExtractionFailed (every chunk failed: the caller must not forward the raw document by default).
    """
    config.validate()
    if not document or not document.strip():
        raise InvalidInput("the document is empty; send the text to compress in the request")
    t0 = time.perf_counter()
    chunks, input_tokens = chunk_document(document, config.chunk_tokens, config.overlap_tokens, config.max_chunks)
    if input_tokens > config.max_document_tokens:
        raise InputTooLarge(
            f"document has {input_tokens} tokens, over the limit of {config.max_document_tokens}; "
            "send a shorter document or raise the limit"
        )
    budget = fact_budget(input_tokens, config)
    outputs = await extractor.extract(chunks, question, budget_tokens=budget, concurrency=config.concurrency)
    by_chunk = {o.chunk: o for o in outputs}
    counts: dict[str, int] = dict.fromkeys(FACT_STATUSES, 0)
    errors = 0
    facts: list[Fact] = []
    for chunk in chunks:
        out = by_chunk.get(chunk.index)
        if out is None or out.error is not None:
            errors += 1
        if out is not None and out.error is None and out.candidates is not None:
            candidates, status = out.candidates, "ok"
        else:
            raw = None if out is None or out.error is not None else out.raw
            candidates, status = repair_output(raw, chunk, question, config.raw_evidence_tokens)
        counts[status] += 1
        facts.extend(to_facts(chunk, candidates, status))
    extraction_seconds = time.perf_counter() - t0
    stats: dict[str, Any] = {
        "extractor": extractor.name,
        "input_tokens": input_tokens,
        "chunks_total": len(chunks),
        "chunks_failed": counts["raw_evidence"],
        "chunks_errored": errors,
        **{f"chunks_{s}": n for s, n in counts.items()},
        "budget_tokens": budget,
    }
    if counts["raw_evidence"] == len(chunks):
        raise ExtractionFailed(
            f"extraction failed for all {len(chunks)} chunks ({errors} extractor errors); "
            "the document was not forwarded",
            stats,
        )
    unique, merged = dedupe(facts, config.dedupe_threshold)
    kept, dropped = _apply_budget(unique, budget)
    pack = render_fact_pack(kept, config.provenance_in_pack)
    forwarded = count_tokens(pack)
    stats.update(
        forwarded_tokens=forwarded,
        compression_ratio=round(input_tokens / max(1, forwarded), 2),
        facts_total=len(facts),
        duplicates_merged=merged,
        facts_kept=len(kept),
        facts_dropped_budget=dropped,
        facts_ungrounded=sum(not f.grounded for f in kept),
        extraction_seconds=round(extraction_seconds, 4),
    )
    return CompressionResult(fact_pack=pack, facts=sorted(kept, key=lambda f: f.start), stats=stats)
