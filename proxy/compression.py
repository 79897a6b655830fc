"""The server's use of the pipeline: limits, config from settings, failure policy, metrics.

The pipeline (liquid_memory_proxy.pipeline) owns chunking/extraction/repair/merge; this module decides what
the *server* does around it: 400 for oversized input, 503 (and nothing forwarded) when extraction fails
entirely, unless the operator set ALLOW_RAW_DOCUMENT_FALLBACK.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any

from liquid_memory_proxy.errors import ProxyError
from liquid_memory_proxy.observability import Metrics
from liquid_memory_proxy.pipeline import (
    CompressionConfig,
    CompressionResult,
    ExtractionFailed,
    InputTooLarge,
    InvalidInput,
    compress,
    count_tokens,
)
from liquid_memory_proxy.settings import ProxySettings

log = logging.getLogger("liquid_memory_proxy.compression")


@dataclass
class Compressed:
    result: CompressionResult
    mode: str  # "compressed" | "raw_fallback"
    extraction_ms: float


def config_from_settings(settings: ProxySettings) -> CompressionConfig:
    return CompressionConfig(
        chunk_tokens=settings.chunk_tokens,
        overlap_tokens=settings.chunk_overlap_tokens,
        target_ratio=settings.target_ratio,
        max_fact_tokens=settings.max_fact_tokens,
        max_document_tokens=settings.max_document_tokens,
        max_chunks=settings.max_chunks,
        concurrency=settings.extraction_concurrency,
    )


def _raw_fallback(document: str, stats: dict[str, Any]) -> CompressionResult:
    tokens = count_tokens(document)
    stats = {**stats, "input_tokens": tokens, "forwarded_tokens": tokens, "compression_ratio": 1.0}
    return CompressionResult(fact_pack=document, facts=[], stats=stats)


async def compress_document(
    document: str,
    question: str,
    *,
    settings: ProxySettings,
    extractor: Any,
    metrics: Metrics,
    request_id: str,
) -> Compressed:
    """Compress `document` for `question`; raises ProxyError (400/503) with a message that says what to do."""
    if len(document) > settings.max_document_chars:
        raise ProxyError(
            400,
            f"The document has {len(document)} characters; this proxy accepts at most "
            f"{settings.max_document_chars} (MAX_DOCUMENT_CHARS). Split it into smaller requests.",
            code="document_too_large",
        )
    start = time.perf_counter()
    try:
        result = await compress(document, question, config_from_settings(settings), extractor)
    except InputTooLarge as exc:
        raise ProxyError(400, f"{exc} Split the document into smaller requests.", code="document_too_large") from None
    except InvalidInput as exc:
        raise ProxyError(400, f"{exc}.", code="invalid_document") from None
    except ExtractionFailed as exc:
        metrics.extraction_failures.inc()
        failed_stats = dict(getattr(exc, "stats", {}) or {})
        log.warning(
            "extraction_failed",
            extra={
                "request_id": request_id,
                "chunks_total": failed_stats.get("chunks_total"),
                "chunks_failed": failed_stats.get("chunks_failed"),
                "error_type": type(exc).__name__,
            },
        )
        if settings.allow_raw_document_fallback:
            elapsed = (time.perf_counter() - start) * 1000
            return Compressed(_raw_fallback(document, failed_stats), "raw_fallback", elapsed)
        raise ProxyError(
            503,
            "Fact extraction failed for every chunk of the document, so nothing was sent to the synthesis "
            "model (the raw document is never forwarded). Retry later; if it persists the operator should "
            "check the extractor (see /health/readiness).",
            code="extraction_failed",
            type="server_error",
        ) from None
    except ProxyError:
        raise
    except Exception as exc:  # noqa: BLE001 - an extractor bug must not leak a traceback or the document
        metrics.extraction_failures.inc()
        log.error("extractor_error", extra={"request_id": request_id, "error_type": type(exc).__name__})
        raise ProxyError(
            503,
            f"The extractor failed (request id {request_id}); nothing was sent upstream. Retry later.",
            code="extraction_failed",
            type="server_error",
        ) from None
    elapsed = (time.perf_counter() - start) * 1000
    metrics.stage.labels("extraction").observe(elapsed / 1000)
    metrics.observe_compression(result.stats)
    return Compressed(result, "compressed", elapsed)
