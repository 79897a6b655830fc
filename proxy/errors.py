"""OpenAI-shaped errors: `{"error": {"message", "type", "param", "code"}}` for every failure.

`ProxyError` is raised anywhere in the server; the handlers installed by `install_error_handlers` turn it,
FastAPI's validation errors, Starlette's HTTP errors and any unexpected exception into that shape, so a
client never sees FastAPI's default `{"detail": ...}` or a traceback.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

log = logging.getLogger("liquid_memory_proxy.errors")

# OpenAI's error `type` values, by HTTP status.
_TYPE_BY_STATUS = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    405: "invalid_request_error",
    413: "invalid_request_error",
    415: "invalid_request_error",
    429: "rate_limit_error",
    501: "not_implemented_error",
}


class ProxyError(Exception):
    """An error with an HTTP status that the client receives in OpenAI's error shape."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        code: str | None = None,
        param: str | None = None,
        type: str | None = None,  # noqa: A002 - OpenAI's field name
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.code = code
        self.param = param
        self.type = type or _TYPE_BY_STATUS.get(status, "server_error" if status >= 500 else "invalid_request_error")
        self.headers = dict(headers or {})
        if status == 501:
            # Retrying an unsupported feature can never succeed; tell the OpenAI SDK not to.
            self.headers.setdefault("x-should-retry", "false")

    def body(self) -> dict[str, Any]:
        return {"error": {"message": self.message, "type": self.type, "param": self.param, "code": self.code}}

    def response(self) -> JSONResponse:
        return JSONResponse(self.body(), status_code=self.status, headers=self.headers)


def bad_request(message: str, *, param: str | None = None, code: str = "invalid_request") -> ProxyError:
    return ProxyError(400, message, param=param, code=code)


def not_implemented(message: str, *, param: str | None = None) -> ProxyError:
    return ProxyError(501, message, param=param, code="unsupported_feature")


def _loc_to_param(loc: tuple[Any, ...] | list[Any]) -> str | None:
    """('body', 'messages', 0, 'content') -> 'messages.0.content' (OpenAI's `param` style)."""
    parts = [str(p) for p in loc if p != "body"]
    # Pydantic adds the union member's name (e.g. 'str', 'list[ContentPart]') to the location; drop it.
    parts = [p for p in parts if not (p.startswith(("list[", "function-")) or p in ("str", "int", "float"))]
    return ".".join(parts) or None


def validation_error(exc: RequestValidationError) -> ProxyError:
    """The first validation problem as a 400 with `param` naming the field (OpenAI returns 400, not 422)."""
    errors = exc.errors()
    if not errors:
        return bad_request("Invalid request body.")
    first = errors[0]
    kind = first.get("type", "")
    if kind in ("json_invalid", "json_type"):
        return bad_request(
            "We could not parse the JSON body of your request. Send a valid JSON object with "
            "'Content-Type: application/json'.",
            code="invalid_json",
        )
    param = _loc_to_param(first.get("loc", ()))
    if kind == "missing":
        return bad_request(f"Missing required parameter: '{param}'.", param=param, code="missing_required_parameter")
    msg = first.get("msg", "invalid value")
    more = f" (and {len(errors) - 1} more problem(s))" if len(errors) > 1 else ""
    where = f"'{param}'" if param else "the request body"
    return bad_request(f"Invalid value for {where}: {msg}.{more}", param=param, code="invalid_type")


def install_error_handlers(app: FastAPI) -> None:
    """Route every error type through `ProxyError.response()`."""

    @app.exception_handler(ProxyError)
    async def _proxy_error(_: Request, exc: ProxyError) -> JSONResponse:
        return exc.response()

    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, exc: RequestValidationError) -> JSONResponse:
        return validation_error(exc).response()

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        message = {404: "Unknown endpoint.", 405: "Method not allowed for this endpoint."}.get(
            exc.status_code, str(exc.detail)
        )
        return ProxyError(exc.status_code, message, code=None).response()

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        rid = getattr(request.state, "request_id", "-")
        # Log the type only: exception messages may quote document text.
        log.error("unhandled_error", extra={"request_id": rid, "error_type": type(exc).__name__})
        return ProxyError(
            500, f"Internal error in the proxy (request id {rid}); see the proxy logs.", code="internal_error"
        ).response()
