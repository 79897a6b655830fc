"""Keyword baseline: BM25 sentence selection only (a benchmark row; no semantic model)."""

from __future__ import annotations

from liquid_memory_proxy.extractors.builtin import BuiltinExtractor


class KeywordExtractor(BuiltinExtractor):
    """The built-in selection with lexical BM25 scoring only and no context expansion."""

    name = "bm25"

    def __init__(self) -> None:
        super().__init__(mode="bm25", context=False)
