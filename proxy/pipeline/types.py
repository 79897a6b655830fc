"""Data types shared by the compression pipeline, the extractors and the server (the stable contract)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Literal

# How a fact was obtained. "ok": the extractor returned valid structured output; "repaired": the JSON was
# malformed and json-repair fixed it; "regex": facts were pulled out of unparseable output with a regex;
# "raw_evidence": nothing usable came back, so the chunk's most question-relevant text is kept verbatim.
FactStatus = Literal["ok", "repaired", "regex", "raw_evidence"]
FACT_STATUSES: tuple[str, ...] = ("ok", "repaired", "regex", "raw_evidence")


class ExtractionFailed(RuntimeError):
    """Every chunk failed to extract. The raw document must not be forwarded unless the operator allows it."""

    def __init__(self, message: str, stats: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.stats = stats or {}


class InvalidInput(ValueError):
    """The request cannot be compressed as given (e.g. empty document, bad config); maps to HTTP 400."""


class InputTooLarge(InvalidInput):
    """The document exceeds a per-request limit (tokens or chunks); the server maps this to HTTP 400."""


@dataclass(frozen=True)
class Chunk:
    """A token-aware slice of the document; `start`/`end` are character offsets into the document."""

    index: int
    start: int
    end: int
    text: str
    n_tokens: int


@dataclass
class Fact:
    """One extracted fact with provenance: chunk index and character span [start, end) in the document.

    `grounded` is False when the text could not be found in its chunk (a generative model may invent facts);
    `chunks` lists every chunk that yielded a near-duplicate of this fact (merged away).
    """

    text: str
    chunk: int
    start: int
    end: int
    status: FactStatus = "ok"
    score: float = 0.0
    grounded: bool = True
    chunks: list[int] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class ChunkOutput:
    """What an extractor returns for one chunk: raw model text (to be repaired) or structured candidates.

    Candidates are dicts with at least "text"; optional "start"/"end" (offsets into the chunk text) and
    "score".
    `error` is set when the call itself failed (timeout, HTTP error, model crash).
    """

    chunk: int
    raw: str | None = None
    candidates: list[dict[str, Any]] | None = None
    error: str | None = None


@dataclass(frozen=True)
class CompressionConfig:
    """Knobs of one compression run (the server builds it from settings + request).

    The fact budget is min(max_fact_tokens, input_tokens / target_ratio) when target_ratio is set; the
    built-in extractor fills it with the best-scoring text, generative extractors are truncated to it by
    score and the number dropped is reported in stats (never silently).
    """

    chunk_tokens: int = 512
    overlap_tokens: int = 64
    target_ratio: float | None = 20.0
    max_fact_tokens: int | None = 4096
    min_fact_tokens: int = 64
    max_document_tokens: int = 1_000_000
    max_chunks: int = 4096
    concurrency: int = 8
    dedupe_threshold: float = 0.8
    raw_evidence_tokens: int = 96
    provenance_in_pack: bool = True

    def validate(self) -> None:
        """Raise InvalidInput with a clear message when the knobs are inconsistent."""
        if self.chunk_tokens < 16:
            raise InvalidInput(f"chunk_tokens must be >= 16, got {self.chunk_tokens}")
        if not 0 <= self.overlap_tokens < self.chunk_tokens // 2:
            raise InvalidInput(
                f"overlap_tokens must be in [0, chunk_tokens/2), got {self.overlap_tokens} "
                f"for chunk_tokens={self.chunk_tokens}"
            )
        if self.target_ratio is not None and self.target_ratio < 1:
            raise InvalidInput(f"target_ratio must be >= 1 or None, got {self.target_ratio}")
        if self.concurrency < 1:
            raise InvalidInput(f"concurrency must be >= 1, got {self.concurrency}")


@dataclass
class CompressionResult:
    """Outcome of `compress`: the exact text to send upstream, the facts with provenance, and the stats."""

    fact_pack: str
    facts: list[Fact]
    stats: dict[str, Any]
