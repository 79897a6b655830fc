"""Token-aware chunking with overlap; every chunk carries its exact character span in the document."""

from __future__ import annotations

import math

from liquid_memory_proxy.pipeline.tokens import encode
from liquid_memory_proxy.pipeline.types import Chunk, InputTooLarge

_SENTENCE_END = (".", "!", "?")


def _is_boundary(document: str, tok_end: int) -> bool:
    """True when a token ending at `tok_end` closes a sentence or a paragraph (a good place to cut).
    A single newline is not enough: hard-wrapped text has one at every line."""
    if tok_end >= len(document):
        return True
    return document[tok_end - 1] in _SENTENCE_END or document.startswith("\n\n", tok_end)


def estimate_chunks(n_tokens: int, chunk_tokens: int, overlap_tokens: int) -> int:
    """Upper bound on the number of chunks for `n_tokens` (used for the per-request limit before work)."""
    if n_tokens <= chunk_tokens:
        return 1 if n_tokens else 0
    step = (chunk_tokens - overlap_tokens) // 2  # snapping may shorten a chunk to half its size
    return 1 + math.ceil((n_tokens - chunk_tokens) / max(1, step))


def chunk_document(
    document: str, chunk_tokens: int, overlap_tokens: int, max_chunks: int | None = None
) -> tuple[list[Chunk], int]:
    """Split `document` into chunks of at most `chunk_tokens` tokens sharing `overlap_tokens` tokens.

    A chunk's end is moved back to the last sentence/line boundary in its second half when there is one,
    so facts are rarely cut in two. Returns (chunks, total token count).
    """
    offsets = encode(document).offsets
    n = len(offsets)
    chunks: list[Chunk] = []
    start_tok = 0
    while start_tok < n:
        end_tok = min(start_tok + chunk_tokens, n)
        if end_tok < n:
            for cand in range(end_tok, start_tok + chunk_tokens // 2, -1):
                if _is_boundary(document, offsets[cand - 1][1]):
                    end_tok = cand
                    break
        c_start, c_end = offsets[start_tok][0], offsets[end_tok - 1][1]
        chunks.append(Chunk(len(chunks), c_start, c_end, document[c_start:c_end], end_tok - start_tok))
        if max_chunks is not None and len(chunks) > max_chunks:
            raise InputTooLarge(
                f"document needs more than {max_chunks} chunks of {chunk_tokens} tokens; "
                "send a shorter document or raise the chunk limit"
            )
        if end_tok >= n:
            break
        start_tok = max(end_tok - overlap_tokens, start_tok + 1)
    return chunks, n
