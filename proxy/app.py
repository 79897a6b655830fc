"""FastAPI app factory: settings, extractor, middleware, error handlers, routes.

`create_app()` reads settings from the environment; tests and embedders may pass `settings` and a ready
`extractor`. For `uvicorn`: `uvicorn --factory liquid_memory_proxy.app:create_app` or
`uvicorn liquid_memory_proxy.asgi:app`.
"""

from __future__ import annotations

import logging
import time
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI
from liquid_memory_proxy import __version__
from liquid_memory_proxy.compression import config_from_settings
from liquid_memory_proxy.errors import install_error_handlers
from liquid_memory_proxy.health import router as health_router
from liquid_memory_proxy.limits import BodySizeLimitMiddleware
from liquid_memory_proxy.observability import Metrics, RequestContextMiddleware, configure_logging
from liquid_memory_proxy.routes_v1 import router as v1_router
from liquid_memory_proxy.settings import ProxySettings

log = logging.getLogger("liquid_memory_proxy.app")


def build_extractor_from_settings(settings: ProxySettings) -> Any:
    """The configured extractor (imported lazily: the built-in one loads a small embedding model)."""
    from liquid_memory_proxy.extractors import build_extractor

    # build_extractor ignores options a backend does not take (and None values).
    options: dict[str, Any] = {
        "base_url": settings.vllm_base_url,
        "model": settings.vllm_model,
        "api_key": settings.vllm_api_key.get_secret_value() if settings.vllm_api_key else None,
        "timeout_s": settings.extractor_timeout_s,
        "linearized_dir": settings.smollm2_linearized_dir,
    }
    return build_extractor(settings.extractor, **options)


def create_app(settings: ProxySettings | None = None, extractor: Any | None = None) -> FastAPI:
    """Build the ASGI app. The extractor is built at start-up (lifespan) unless one is given."""
    settings = settings or ProxySettings()
    config_from_settings(settings).validate()  # inconsistent knobs fail at start-up, not per request
    configure_logging(settings.log_level)
    metrics = Metrics()

    @asynccontextmanager
    async def lifespan(app: FastAPI):  # type: ignore[no-untyped-def]
        if app.state.extractor is None:
            app.state.extractor = build_extractor_from_settings(settings)
        warmup = getattr(app.state.extractor, "warmup", None)
        if warmup is not None:
            await warmup()  # load models before the port opens, not on the first request
        log.info("ready", extra={"extractor": app.state.extractor.name, "model": settings.synthesis_model})
        yield
        close = getattr(app.state.extractor, "aclose", None)
        if close is not None:
            await close()

    app = FastAPI(
        title="Liquid Memory proxy",
        version=__version__,
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
    )
    app.state.settings = settings
    app.state.extractor = extractor
    app.state.metrics = metrics
    app.state.started_at = int(time.time())
    install_error_handlers(app)
    app.include_router(health_router)
    app.include_router(v1_router)
    # Added last = outermost: the request id exists before anything else runs.
    app.add_middleware(BodySizeLimitMiddleware, max_bytes=settings.max_request_bytes)
    app.add_middleware(RequestContextMiddleware, metrics=metrics)
    return app
