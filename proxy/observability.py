"""Request ids, structured JSON logs (ids and numbers only, never message text or secrets), metrics.

Each app gets its own `CollectorRegistry` so several apps (tests, benchmarks) can live in one process.
"""

from __future__ import annotations

import json
import logging
import re
import time
import uuid
from typing import Any

from liquid_memory_proxy.errors import ProxyError
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest
from starlette.types import ASGIApp, Message, Receive, Scope, Send

REQUEST_ID_HEADER = "x-request-id"
_SAFE_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
# Only these `extra` keys reach the log line; anything else (e.g. an accidental `document=`) is dropped.
_LOG_FIELDS = (
    "request_id",
    "method",
    "path",
    "status",
    "duration_ms",
    "endpoint",
    "model",
    "extractor",
    "mode",
    "input_tokens",
    "forwarded_tokens",
    "compression_ratio",
    "chunks_total",
    "chunks_failed",
    "attempts",
    "error_type",
    "error_code",
    "prompt_tokens",
    "completion_tokens",
    "extraction_ms",
    "synthesis_ms",
    "stream",
    "dry_run",
    "host",
    "port",
)


class JsonFormatter(logging.Formatter):
    """One JSON object per line with a fixed whitelist of fields."""

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "ts": round(record.created, 3),
            "level": record.levelname,
            "logger": record.name,
            "event": record.getMessage(),
        }
        for key in _LOG_FIELDS:
            if key in record.__dict__:
                out[key] = record.__dict__[key]
        return json.dumps(out, separators=(",", ":"))


def configure_logging(level: str) -> None:
    """JSON logs on stderr for the proxy's loggers (idempotent)."""
    logger = logging.getLogger("liquid_memory_proxy")
    logger.setLevel(level)
    if not any(isinstance(h.formatter, JsonFormatter) for h in logger.handlers):
        handler = logging.StreamHandler()
        handler.setFormatter(JsonFormatter())
        logger.addHandler(handler)
    logger.propagate = False
    # LiteLLM logs request bodies at debug level: keep it quiet whatever the proxy's level is.
    logging.getLogger("LiteLLM").setLevel(logging.WARNING)


class Metrics:
    """The proxy's Prometheus metrics."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter("lmproxy_requests", "HTTP requests", ["endpoint", "status"], registry=r)
        self.latency = Histogram(
            "lmproxy_request_latency_seconds",
            "End-to-end request latency",
            ["endpoint"],
            registry=r,
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120),
        )
        self.stage = Histogram(
            "lmproxy_stage_seconds",
            "Time per pipeline stage",
            ["stage"],
            registry=r,
            buckets=(0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60),
        )
        self.tokens_in = Counter("lmproxy_document_tokens_in", "Document tokens received", registry=r)
        self.tokens_forwarded = Counter("lmproxy_tokens_forwarded", "Fact-pack tokens forwarded", registry=r)
        self.prompt_tokens = Counter("lmproxy_synthesis_prompt_tokens", "Upstream prompt tokens", registry=r)
        self.completion_tokens = Counter(
            "lmproxy_synthesis_completion_tokens", "Upstream completion tokens", registry=r
        )
        self.compression_ratio = Histogram(
            "lmproxy_compression_ratio",
            "Input tokens / forwarded tokens",
            registry=r,
            buckets=(1, 2, 5, 10, 20, 50, 100, 200, 500, 1000),
        )
        self.chunk_failures = Counter("lmproxy_extractor_chunk_failures", "Chunks whose extraction failed", registry=r)
        self.extraction_failures = Counter(
            "lmproxy_extraction_failures", "Requests where extraction failed entirely", registry=r
        )
        self.synthesis_errors = Counter("lmproxy_synthesis_errors", "Synthesis failures", ["code"], registry=r)

    def observe_compression(self, stats: dict[str, Any]) -> None:
        self.tokens_in.inc(stats.get("input_tokens", 0) or 0)
        self.tokens_forwarded.inc(stats.get("forwarded_tokens", 0) or 0)
        ratio = stats.get("compression_ratio")
        if isinstance(ratio, int | float) and ratio > 0:
            self.compression_ratio.observe(ratio)
        self.chunk_failures.inc(stats.get("chunks_failed", 0) or 0)

    def render(self) -> tuple[bytes, str]:
        return generate_latest(self.registry), CONTENT_TYPE_LATEST


def _endpoint_label(path: str) -> str:
    """Bounded label set: known routes by name, everything else 'other' (no cardinality explosion)."""
    known = (
        "/v1/chat/completions",
        "/v1/hybrid_chat",
        "/v1/models",
        "/health/liveliness",
        "/health/readiness",
        "/metrics",
    )
    return path if path in known else "other"


class RequestContextMiddleware:
    """Pure-ASGI middleware: request id (from `x-request-id` if safe, else new), access log, metrics.

    Pure ASGI (not BaseHTTPMiddleware) so streaming responses pass through untouched and cheaply.
    """

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics
        self.log = logging.getLogger("liquid_memory_proxy.access")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        incoming = dict(scope.get("headers") or []).get(REQUEST_ID_HEADER.encode(), b"").decode("latin-1")
        request_id = incoming if _SAFE_ID.match(incoming) else f"req_{uuid.uuid4().hex}"
        scope.setdefault("state", {})["request_id"] = request_id
        start = time.perf_counter()
        status_holder = {"status": 500}
        started = {"yes": False}
        recorded = {"yes": False}
        endpoint = _endpoint_label(scope.get("path", ""))

        def record() -> None:
            """Metrics + access log, once; called just BEFORE the last body chunk goes out, so a client that
            has the full response (and then reads /metrics or the logs) always sees this request counted."""
            if recorded["yes"]:
                return
            recorded["yes"] = True
            elapsed = time.perf_counter() - start
            self.metrics.requests.labels(endpoint, str(status_holder["status"])).inc()
            self.metrics.latency.labels(endpoint).observe(elapsed)
            self.log.info(
                "request",
                extra={
                    "request_id": request_id,
                    "method": scope.get("method"),
                    "path": endpoint,
                    "status": status_holder["status"],
                    "duration_ms": round(elapsed * 1000, 2),
                },
            )

        async def send_wrapper(message: Message) -> None:
            if message["type"] == "http.response.start":
                started["yes"] = True
                status_holder["status"] = message["status"]
                headers = list(message.get("headers", []))
                headers.append((REQUEST_ID_HEADER.encode(), request_id.encode()))
                # Standard Server-Timing header: time from request arrival to response start, in ms.
                elapsed_ms = (time.perf_counter() - start) * 1000
                headers.append((b"server-timing", f"proxy;dur={elapsed_ms:.3f}".encode()))
                message = {**message, "headers": headers}
            elif message["type"] == "http.response.body" and not message.get("more_body", False):
                record()
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        except Exception as exc:  # noqa: BLE001 - last line of defence: no traceback to client or log
            # Only the type is logged: exception messages may quote document text.
            extra = {"request_id": request_id, "error_type": type(exc).__name__}
            self.log.error("unhandled_error", extra=extra)
            if not started["yes"]:
                error = ProxyError(
                    500,
                    f"Internal error in the proxy (request id {request_id}); see the proxy logs.",
                    code="internal_error",
                )
                await error.response()(scope, receive, send_wrapper)
        finally:
            record()  # no-op unless the response never completed (client gone, stream aborted)
