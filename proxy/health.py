"""Liveness, readiness (extractor + synthesis + SDK status) and the Prometheus endpoint.

Readiness is 200 only when the extractor answers its health check and the synthesis backend is usable; the
SDK block (version, licence) is informational: the proxy does not need a licence to run.
"""

from __future__ import annotations

import asyncio
import hmac
import time
from typing import Any

import httpx
from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from liquid_memory_proxy.settings import ProxySettings

router = APIRouter()
_PROBE_TIMEOUT_S = 3.0


@router.get("/health/liveliness")
async def liveliness() -> dict[str, str]:
    return {"status": "alive"}


async def extractor_status(extractor: Any) -> dict[str, Any]:
    """`await extractor.health()` → {"ok": bool, ...}; any exception or timeout means not ready."""
    name = getattr(extractor, "name", type(extractor).__name__)
    try:
        result = await asyncio.wait_for(extractor.health(), _PROBE_TIMEOUT_S)
    except Exception as exc:  # noqa: BLE001 - report, never raise, from a health check
        return {"ok": False, "name": name, "error": type(exc).__name__}
    if isinstance(result, dict):
        ok = bool(result.get("ok", result.get("status") in ("ok", "ready", True)))
        return {**result, "ok": ok, "name": name}
    return {"ok": bool(result), "name": name}


async def synthesis_status(settings: ProxySettings) -> dict[str, Any]:
    """Probe `GET {api_base}/models` when an API base is configured (local server); cloud: config only.

    A cloud provider is not probed (it would cost a request and could leak nothing but still needs a key);
    we report it as configured and say so with `"probed": false`.
    """
    out: dict[str, Any] = {"model": settings.synthesis_model}
    if not settings.synthesis_api_base:
        out.update(ok=True, probed=False, status="configured")
        return out
    url = settings.synthesis_api_base.rstrip("/") + "/models"
    headers = {}
    if settings.synthesis_api_key is not None:
        headers["authorization"] = f"Bearer {settings.synthesis_api_key.get_secret_value()}"
    try:
        async with httpx.AsyncClient(timeout=_PROBE_TIMEOUT_S) as client:
            response = await client.get(url, headers=headers)
        ok = response.status_code < 500
        out.update(ok=ok, probed=True, status="reachable" if ok else f"http_{response.status_code}")
    except httpx.HTTPError as exc:
        out.update(ok=False, probed=True, status="unreachable", error=type(exc).__name__)
    return out


_VERIFY_TTL_S = 300.0
_verify_cache: dict[str, Any] = {}


def distribution_status() -> dict[str, Any]:
    """The signed-manifest verification of the installed distribution (cached for 5 minutes: it hashes files).

    Uses `liquid_memory.manifest.find_distribution_root` / `verify_path` when the SDK build has them.
    """
    now = time.monotonic()
    if _verify_cache and now - _verify_cache["at"] < _VERIFY_TTL_S:
        return _verify_cache["value"]
    try:
        from liquid_memory import manifest  # type: ignore[attr-defined]

        root = manifest.find_distribution_root()
        if root is None:
            value: dict[str, Any] = {"status": "no_distribution"}
        else:
            report = manifest.verify_path(root)
            info = report.to_dict()
            value = {
                "status": "verified" if report.ok else "invalid",
                "version": info.get("version"),
                "expires": info.get("expires"),
                "problems": [getattr(p, "code", type(p).__name__) for p in report.problems],
            }
    except Exception as exc:  # noqa: BLE001 - SDK without the manifest module, or a verifier bug
        value = {"status": "unavailable", "error": type(exc).__name__}
    _verify_cache.update(at=now, value=value)
    return value


def sdk_status() -> dict[str, Any]:
    """Version and licence state through the SDK's public API; degrades gracefully if parts are missing."""
    try:
        import liquid_memory
    except Exception as exc:  # noqa: BLE001
        return {"available": False, "error": type(exc).__name__}
    out: dict[str, Any] = {"available": True, "version": getattr(liquid_memory, "__version__", "unknown")}
    out["distribution"] = distribution_status()
    try:
        from liquid_memory import licensing  # type: ignore[attr-defined]
    except Exception:  # noqa: BLE001 - licensing runtime not present in this build
        out["licence"] = {"status": "unavailable"}
        return out
    current = getattr(licensing, "current_licence", None)
    if current is None:
        out["licence"] = {"status": "unavailable"}
        return out
    try:
        lic = current()
    except Exception as exc:  # noqa: BLE001 - typed SDK errors carry a stable code; never the key itself
        out["licence"] = {
            "status": "missing" if type(exc).__name__ == "LicenseMissing" else "invalid",
            "error": type(exc).__name__,
            "code": getattr(exc, "code", None),
        }
        return out
    out["licence"] = {
        "status": "valid",
        "licence_id": getattr(lic, "lid", None),
        "expires": getattr(lic, "expires", None),
        "features": list(getattr(lic, "features", ()) or ()),
    }
    return out


def _authenticated(request: Request) -> bool:
    """True only for a caller presenting a configured API key (with auth off, nobody is authenticated)."""
    keys: tuple[str, ...] = request.app.state.settings.api_keys
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if not keys or scheme.lower() != "bearer" or not token.strip():
        return False
    ok = False
    for key in keys:
        ok |= hmac.compare_digest(token.strip().encode(), key.encode())
    return ok


def _redact_licence(sdk: dict[str, Any]) -> dict[str, Any]:
    """Anonymous probes learn only whether a licence is valid, not whose it is or when it ends."""
    licence = sdk.get("licence")
    if not isinstance(licence, dict):
        return sdk
    return {**sdk, "licence": {"status": licence.get("status")}}


@router.get("/health/readiness")
async def readiness(request: Request) -> JSONResponse:
    state = request.app.state
    extractor, synth = await asyncio.gather(extractor_status(state.extractor), synthesis_status(state.settings))
    sdk = await asyncio.to_thread(sdk_status)
    if not _authenticated(request):
        sdk = _redact_licence(sdk)
    ready = extractor["ok"] and synth["ok"]
    body = {
        "status": "ready" if ready else "not_ready",
        "uptime_s": round(time.time() - state.started_at, 1),
        "extractor": extractor,
        "synthesis": synth,
        "sdk": sdk,
    }
    return JSONResponse(body, status_code=200 if ready else 503)


@router.get("/metrics")
async def metrics(request: Request) -> Response:
    payload, content_type = request.app.state.metrics.render()
    return Response(payload, media_type=content_type)
