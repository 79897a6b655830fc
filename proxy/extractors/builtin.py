"""Built-in extractive extractor (the default): no generative model, question-aware, paraphrase-aware.

Every sentence of the document is scored with BM25 (shared words) plus two signals from a static token
table distilled from all-MiniLM-L6-v2 (sentence-vector cosine and a soft per-word match, which catch
synonyms and paraphrase). The `rerank_top` best candidates are then re-scored with the contextual MiniLM
model. The best sentences fill the token budget; sentences next to the top picks that carry numbers,
dates, names or amounts are kept with them, and adjacent picks are joined into one fact.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from liquid_memory_proxy.extractors.base import Extractor
from liquid_memory_proxy.extractors.scoring import StaticScorer, bm25_scores, rrf, zscore
from liquid_memory_proxy.pipeline.sentences import has_specifics, sentence_spans
from liquid_memory_proxy.pipeline.tokens import count_tokens_batch
from liquid_memory_proxy.pipeline.types import Chunk, ChunkOutput

TAG_TOKENS = 8  # provenance tag + newline per fact line in the fact pack


@dataclass
class Unit:
    """A sentence of the document: owning chunk, span relative to that chunk, text."""

    chunk: int
    start: int
    end: int
    text: str


def document_units(chunks: Sequence[Chunk]) -> list[Unit]:
    """Sentences of all chunks, each once. A chunk's last sentence is left to the next chunk when the chunk
    cut it; sentences starting before the end of the last one taken (the overlap) are skipped."""
    units: list[Unit] = []
    covered = -1
    for k, c in enumerate(chunks):
        spans = sentence_spans(c.text)
        if spans and k + 1 < len(chunks) and spans[-1][1] == len(c.text) and c.text[-1:] not in ".!?\"')]":
            spans = spans[:-1]
        for s, e in spans:
            if c.start + s < covered:
                continue
            units.append(Unit(c.index, s, e, c.text[s:e]))
            covered = c.start + e
    return units


class BuiltinExtractor(Extractor):
    """Hybrid lexical + MiniLM extractive selection. `mode`: "hybrid" (default), "static" (no contextual
    rerank) or "bm25" (lexical only: the keyword baseline). `pool_per_view` candidates from each cheap view
    are re-scored by the contextual model (cost grows linearly with it)."""

    name = "builtin"

    def __init__(self, mode: str = "hybrid", pool_per_view: int = 24, context: bool = True) -> None:
        if mode not in ("hybrid", "static", "bm25"):
            raise ValueError(f"mode must be hybrid, static or bm25, got {mode!r}")
        self.mode = mode
        self.pool_per_view = pool_per_view
        self.context = context
        self._static: StaticScorer | None = None
        self._lock = threading.Lock()

    def _load(self) -> None:
        with self._lock:  # concurrent first requests must not distil the static table twice
            self._load_locked()

    def _load_locked(self) -> None:
        if self.mode != "bm25" and self._static is None:
            from liquid_memory_proxy.extractors.minilm import load_model, static_table

            self._static = StaticScorer(static_table())
            if self.mode == "hybrid":
                load_model()

    def score(self, question: str, texts: list[str]) -> np.ndarray:
        """Relevance of each sentence to the question (higher is better; comparable within one call)."""
        lexical = bm25_scores(question, texts)
        if self.mode == "bm25" or not texts:
            return lexical
        self._load()
        assert self._static is not None
        views = [lexical, *self._static.views(question, texts).values()]
        fused = rrf(views)
        if self.mode == "static":
            return fused
        from liquid_memory_proxy.extractors.minilm import embed_sentences

        pool = sorted({int(i) for v in views for i in np.argsort(-v, kind="stable")[: self.pool_per_view]})
        emb = embed_sentences([question] + [texts[i] for i in pool], max_tokens=48)
        ctx = emb[1:] @ emb[0]
        # pooled candidates first, ordered by contextual cosine (+ a little BM25 for exact names/numbers);
        # the rest keep their fused cheap-view order below them
        final = fused / (fused.max() + 1e-12)
        final[pool] = 2.0 + 0.1 * (zscore(ctx) + 0.2 * zscore(lexical[pool]))
        return final

    def select(self, units: list[Unit], scores: np.ndarray, budget_tokens: int) -> dict[int, float]:
        """Indices of the units to keep (→ score): best first within the budget, then their neighbours
        with specifics (numbers, dates, names) while budget remains."""
        sizes = count_tokens_batch([u.text for u in units])
        picked: dict[int, float] = {}
        used = 0
        order = np.argsort(-scores, kind="stable")
        primary_budget = int(budget_tokens * (0.85 if self.context else 1.0))
        for i in order:
            cost = sizes[i] + TAG_TOKENS
            if used + cost > primary_budget:
                continue
            picked[int(i)] = float(scores[i])
            used += cost
        if self.context:
            for i in list(order[: max(3, len(picked) // 4)]):
                if int(i) not in picked:
                    continue
                for j in (int(i) - 1, int(i) + 1):
                    if 0 <= j < len(units) and j not in picked and has_specifics(units[j].text):
                        if units[j].chunk == units[int(i)].chunk and used + sizes[j] <= budget_tokens:
                            picked[j] = float(scores[i]) - 1e-3
                            used += sizes[j]
        return picked

    def _extract_sync(self, chunks: Sequence[Chunk], question: str, budget_tokens: int) -> list[ChunkOutput]:
        units = document_units(chunks)
        scores = self.score(question, [u.text for u in units]) if units else np.zeros(0)
        picked = self.select(units, scores, budget_tokens)
        out = {c.index: ChunkOutput(chunk=c.index, candidates=[]) for c in chunks}
        run: list[int] = []
        for i in sorted(picked) + [-10]:
            if run and (i != run[-1] + 1 or units[i].chunk != units[run[0]].chunk):
                first, last = units[run[0]], units[run[-1]]
                text = chunks[first.chunk].text[first.start : last.end]
                score = max(picked[k] for k in run)
                out[first.chunk].candidates.append(
                    {"text": text, "start": first.start, "end": last.end, "score": score}
                )
                run = []
            if i >= 0:
                run.append(i)
        return list(out.values())

    async def extract(
        self, chunks: Sequence[Chunk], question: str, *, budget_tokens: int, concurrency: int = 8
    ) -> list[ChunkOutput]:
        return await asyncio.to_thread(self._extract_sync, chunks, question, budget_tokens)

    async def warmup(self) -> None:
        """Load (and on first use distil) the models so the first request is not slow."""
        await asyncio.to_thread(self._load)

    async def health(self) -> dict[str, Any]:
        t0 = time.perf_counter()
        try:
            await self.warmup()
            ok, detail = True, "ready"
        except Exception as exc:  # health must report, not raise
            ok, detail = False, f"{type(exc).__name__}: {exc}"
        return {
            "ok": ok,
            "extractor": self.name,
            "mode": self.mode,
            "detail": detail,
            "seconds": round(time.perf_counter() - t0, 3),
        }
