"""Optional client API keys: when PROXY_API_KEYS is set, /v1 routes need `Authorization: Bearer <key>`.

Keys are compared in constant time and never logged. Health and metrics endpoints stay open (they carry
no document data) so orchestrators can probe them.
"""

from __future__ import annotations

import hmac

from fastapi import Request
from liquid_memory_proxy.errors import ProxyError


def _unauthorized(message: str) -> ProxyError:
    return ProxyError(
        401,
        message,
        code="invalid_api_key",
        type="invalid_request_error",
        headers={"www-authenticate": "Bearer"},
    )


async def require_api_key(request: Request) -> None:
    """FastAPI dependency: passes when auth is off or the bearer token matches a configured key."""
    keys: tuple[str, ...] = request.app.state.settings.api_keys
    if not keys:
        return
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise _unauthorized(
            "You didn't provide an API key. Send it as 'Authorization: Bearer <key>' "
            "(the OpenAI SDK does this from api_key=...)."
        )
    token_bytes = token.strip().encode()
    # Compare against every key (no early exit) so timing does not reveal which key nearly matched.
    ok = False
    for key in keys:
        ok |= hmac.compare_digest(token_bytes, key.encode())
    if not ok:
        raise _unauthorized("Incorrect API key provided.")
