"""Ground fact candidates in their chunk (provenance spans), merge near-duplicates, apply the token budget."""

from __future__ import annotations

import re
from typing import Any

from liquid_memory_proxy.pipeline.sentences import content_words, sentence_spans
from liquid_memory_proxy.pipeline.types import Chunk, Fact, FactStatus

_WS = re.compile(r"\s+")


def _find_span(chunk: Chunk, text: str) -> tuple[int, int, bool]:
    """Chunk-relative span of `text` and whether it is grounded (found, or its words are in the chunk)."""
    pos = chunk.text.find(text)
    if pos >= 0:
        return pos, pos + len(text), True
    words = [re.escape(w) for w in text.split()]
    if words:
        m = re.search(r"\s+".join(words), chunk.text, re.IGNORECASE)
        if m:
            return m.start(), m.end(), True
    fact_words = set(content_words(text))
    best, best_span = 0.0, (0, len(chunk.text))
    for s, e in sentence_spans(chunk.text):
        overlap = len(fact_words & set(content_words(chunk.text[s:e]))) / max(1, len(fact_words))
        if overlap > best:
            best, best_span = overlap, (s, e)
    chunk_words = set(content_words(chunk.text))
    grounded = bool(fact_words) and len(fact_words & chunk_words) / len(fact_words) >= 0.8
    return best_span[0], best_span[1], grounded


def to_facts(chunk: Chunk, candidates: list[dict[str, Any]], status: FactStatus) -> list[Fact]:
    """Facts with document-level spans for one chunk's candidates."""
    facts: list[Fact] = []
    for c in candidates:
        text = _WS.sub(" ", str(c["text"])).strip()
        if not text:
            continue
        s, e = c.get("start"), c.get("end")
        if isinstance(s, int) and isinstance(e, int) and 0 <= s < e <= len(chunk.text):
            grounded = True
        else:
            s, e, grounded = _find_span(chunk, text)
        score = c.get("score")
        facts.append(
            Fact(
                text=text,
                chunk=chunk.index,
                start=chunk.start + s,
                end=chunk.start + e,
                status=status,
                score=float(score) if isinstance(score, int | float) else 1.0,
                grounded=grounded,
                chunks=[chunk.index],
            )
        )
    return facts


def _same(a: Fact, b: Fact, threshold: float, words: dict[int, set[str]]) -> bool:
    """Near-duplicates: spans overlapping by most of the shorter one, or high word-set Jaccard similarity."""
    inter = min(a.end, b.end) - max(a.start, b.start)
    if a.grounded and b.grounded and inter > 0 and inter >= 0.8 * min(a.end - a.start, b.end - b.start):
        return True
    wa, wb = words[id(a)], words[id(b)]
    if not wa or not wb:
        return a.text.lower() == b.text.lower()
    return len(wa & wb) / len(wa | wb) >= threshold


def dedupe(facts: list[Fact], threshold: float) -> tuple[list[Fact], int]:
    """Keep the best-scoring fact of each near-duplicate group; record every source chunk on the keeper."""
    words = {id(f): set(content_words(f.text)) for f in facts}
    kept: list[Fact] = []
    merged = 0
    for f in sorted(facts, key=lambda f: (-f.score, f.start)):
        twin = next((k for k in kept if _same(k, f, threshold, words)), None)
        if twin is None:
            kept.append(f)
        else:
            merged += 1
            twin.chunks = sorted(set(twin.chunks) | set(f.chunks))
    return kept, merged
