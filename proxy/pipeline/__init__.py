"""Document compression pipeline: chunk → extract (concurrent) → repair → merge/dedupe → compact fact pack.

Contract used by the server:

    result = await compress(document, question, config, extractor)
    result.fact_pack   # exact compact text to send upstream
    result.facts       # list[Fact] with provenance (chunk, start, end, status, grounded)
    result.stats       # input_tokens, forwarded_tokens, compression_ratio, chunks_total, chunks_failed,
                       # chunks_<status> counts, facts_total, facts_dropped_budget, extraction_seconds
    raises ExtractionFailed when every chunk failed, InputTooLarge (a subclass of InvalidInput) when a
    per-request limit is exceeded, InvalidInput for an empty document or inconsistent config.
"""

from liquid_memory_proxy.pipeline.compress import compress
from liquid_memory_proxy.pipeline.tokens import count_tokens
from liquid_memory_proxy.pipeline.types import (
    Chunk,
    ChunkOutput,
    CompressionConfig,
    CompressionResult,
    ExtractionFailed,
    Fact,
    InputTooLarge,
    InvalidInput,
)

__all__ = [
    "Chunk",
    "ChunkOutput",
    "CompressionConfig",
    "CompressionResult",
    "ExtractionFailed",
    "Fact",
    "InputTooLarge",
    "InvalidInput",
    "compress",
    "count_tokens",
]
