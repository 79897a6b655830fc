"""The extractor interface: per-chunk fact extraction, run concurrently, with a health report."""

from __future__ import annotations

import abc
import asyncio
from collections.abc import Sequence
from typing import Any

from liquid_memory_proxy.pipeline.types import Chunk, ChunkOutput


class Extractor(abc.ABC):
    """Turns chunks into fact candidates (structured) or raw model text (repaired by the pipeline).

    Generative extractors implement `extract_chunk`; `extract` runs it over all chunks with at most
    `concurrency` in flight and turns exceptions into per-chunk errors (the pipeline counts them).
    Extractors that need the whole document at once (the built-in one scores sentences globally)
    override `extract`.
    """

    name: str = "extractor"

    async def extract(
        self, chunks: Sequence[Chunk], question: str, *, budget_tokens: int, concurrency: int = 8
    ) -> list[ChunkOutput]:
        sem = asyncio.Semaphore(concurrency)

        async def one(chunk: Chunk) -> ChunkOutput:
            async with sem:
                try:
                    return await self.extract_chunk(chunk, question)
                except Exception as exc:  # one chunk's failure must not sink the others
                    return ChunkOutput(chunk=chunk.index, error=f"{type(exc).__name__}: {exc}")

        return list(await asyncio.gather(*(one(c) for c in chunks)))

    async def extract_chunk(self, chunk: Chunk, question: str) -> ChunkOutput:
        raise NotImplementedError(f"{type(self).__name__} extracts whole documents only")

    @abc.abstractmethod
    async def health(self) -> dict[str, Any]:
        """{"ok": bool, "extractor": name, ...details}; must not raise."""

    async def aclose(self) -> None:
        """Release clients/models (default: nothing to release)."""
        return None
