"""Synthesis through LiteLLM `acompletion`: model resolution, timeouts, retries, error mapping, streaming.

Retries are done here (not inside LiteLLM/OpenAI SDK, whose retries are switched off with max_retries=0) so
the policy is explicit and testable: 429, 5xx, timeouts and connection errors are retried up to
SYNTHESIS_MAX_RETRIES times with exponential backoff (honouring a short Retry-After); everything else
fails at once. Provider errors become `ProxyError`s with the status a client should see.
"""

from __future__ import annotations

import asyncio
import os
import random
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

# Must be set before LiteLLM is imported: never fetch the model price map from the internet at start-up.
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

import httpx  # noqa: E402
import litellm  # noqa: E402
import openai  # noqa: E402
from liquid_memory_proxy.errors import ProxyError  # noqa: E402
from liquid_memory_proxy.settings import PUBLIC_MODEL_ALIAS, ProxySettings  # noqa: E402
from litellm import exceptions as llm_exc  # noqa: E402

litellm.telemetry = False
litellm.suppress_debug_info = True
# Privacy: if an operator enables LiteLLM callbacks, they must not receive prompt or answer text.
litellm.turn_off_message_logging = True

# A local OpenAI-compatible server usually needs no key, but the OpenAI SDK refuses to start without one.
_PLACEHOLDER_KEY = "no-key-needed-for-local-server"
_MAX_RETRY_AFTER_S = 5.0


@dataclass
class SynthesisResult:
    content: str
    finish_reason: str
    model: str
    usage: dict[str, int]
    attempts: int


def resolve_model(client_model: str | None, settings: ProxySettings) -> str:
    """The LiteLLM model string for a client's `model` (see FORWARD_CLIENT_MODEL in the README)."""
    if not client_model or client_model in (PUBLIC_MODEL_ALIAS, settings.synthesis_model):
        return settings.synthesis_model
    if not settings.forward_client_model:
        return settings.synthesis_model
    provider = settings.synthesis_provider
    if provider is None:
        return client_model
    if "/" in client_model and not client_model.startswith(provider + "/"):
        raise ProxyError(
            400,
            f"Model '{client_model}' names a different provider than this proxy's synthesis backend "
            f"('{provider}'). Use a model name without a provider prefix, or '{PUBLIC_MODEL_ALIAS}'.",
            param="model",
            code="model_not_found",
        )
    return client_model if "/" in client_model else f"{provider}/{client_model}"


def _call_kwargs(settings: ProxySettings, model: str, messages: list[dict[str, Any]], params: dict[str, Any]):
    kwargs: dict[str, Any] = {
        "model": model,
        "messages": messages,
        "timeout": settings.synthesis_timeout_s,
        "max_retries": 0,  # our own retry loop below
        "num_retries": 0,
        **params,
    }
    if settings.synthesis_api_base:
        kwargs["api_base"] = settings.synthesis_api_base
    if settings.synthesis_api_key is not None:
        kwargs["api_key"] = settings.synthesis_api_key.get_secret_value()
    elif settings.synthesis_api_base:
        kwargs["api_key"] = _PLACEHOLDER_KEY
    return kwargs


def _is_retryable(exc: Exception) -> bool:
    if isinstance(exc, llm_exc.Timeout | llm_exc.APIConnectionError | llm_exc.RateLimitError):
        return True
    status = getattr(exc, "status_code", None)
    return isinstance(status, int) and (status == 429 or status >= 500)


def _retry_after(exc: Exception) -> float | None:
    response = getattr(exc, "response", None)
    headers = getattr(response, "headers", None)
    value = headers.get("retry-after") if headers is not None else None
    try:
        return min(float(value), _MAX_RETRY_AFTER_S) if value is not None else None
    except (TypeError, ValueError):
        return None


def map_provider_error(exc: Exception) -> ProxyError:
    """A LiteLLM/provider exception as the OpenAI-shaped error the client receives."""
    upstream = getattr(exc, "status_code", None)
    if isinstance(exc, llm_exc.Timeout):
        return ProxyError(
            504, "The synthesis model timed out; retry later.", code="upstream_timeout", type="server_error"
        )
    if isinstance(exc, llm_exc.RateLimitError) or upstream == 429:
        retry = _retry_after(exc)
        headers = {"retry-after": str(int(retry))} if retry else None
        return ProxyError(
            429,
            "The synthesis model is rate-limited; retry later.",
            code="upstream_rate_limited",
            headers=headers,
        )
    if isinstance(exc, llm_exc.ContextWindowExceededError):
        return ProxyError(
            400,
            "The compressed prompt still exceeds the synthesis model's context window; "
            "lower MAX_FACT_TOKENS or ask a narrower question.",
            code="context_length_exceeded",
        )
    if isinstance(exc, llm_exc.AuthenticationError | llm_exc.PermissionDeniedError) or upstream in (401, 403):
        return ProxyError(
            502,
            "The synthesis provider rejected the proxy's credentials; the operator must check SYNTHESIS_API_KEY.",
            code="upstream_auth_error",
            type="server_error",
        )
    if isinstance(exc, llm_exc.NotFoundError) or upstream == 404:
        return ProxyError(
            404,
            "The synthesis provider does not know the requested model.",
            param="model",
            code="model_not_found",
        )
    if isinstance(exc, llm_exc.BadRequestError | llm_exc.UnprocessableEntityError) or upstream in (400, 422):
        return ProxyError(
            400, f"The synthesis provider rejected the request: {_short(exc)}", code="upstream_bad_request"
        )
    if isinstance(exc, llm_exc.APIConnectionError) or _is_connection_error(exc):
        return ProxyError(
            502,
            "Cannot reach the synthesis model; retry later.",
            code="upstream_unavailable",
            type="server_error",
        )
    return ProxyError(
        502,
        f"The synthesis model failed (upstream status {upstream or 'unknown'}); retry later.",
        code="upstream_error",
        type="server_error",
    )


def _is_connection_error(exc: BaseException) -> bool:
    """LiteLLM reports 'connection refused' as a 500 InternalServerError; find the cause in the chain."""
    seen: BaseException | None = exc
    for _ in range(10):
        if seen is None:
            break
        if isinstance(seen, httpx.ConnectError | openai.APIConnectionError) and not isinstance(
            seen, openai.APITimeoutError
        ):
            return True
        seen = seen.__cause__ or seen.__context__
    return "connection error" in str(exc).lower()


def _short(exc: Exception, limit: int = 300) -> str:
    """The provider's message, cut short (it never contains the document: only the fact pack goes up)."""
    text = str(getattr(exc, "message", exc)).replace("\n", " ")
    return text[:limit]


async def _with_retries(settings: ProxySettings, call):  # type: ignore[no-untyped-def]
    attempt = 0
    while True:
        attempt += 1
        try:
            return await call(), attempt
        except Exception as exc:  # noqa: BLE001 - every provider error is mapped below
            if attempt > settings.synthesis_max_retries or not _is_retryable(exc):
                err = map_provider_error(exc)
                if attempt > 1 and err.status >= 500:
                    # We already retried with backoff; stop the OpenAI SDK from multiplying the attempts.
                    err.headers["x-should-retry"] = "false"
                raise err from None
            delay = _retry_after(exc)
            if delay is None:
                delay = settings.synthesis_retry_backoff_s * (2 ** (attempt - 1)) * (0.5 + random.random())
            await asyncio.sleep(delay)


async def complete(
    settings: ProxySettings, model: str, messages: list[dict[str, Any]], params: dict[str, Any]
) -> SynthesisResult:
    """One non-streaming synthesis call with retries; raises ProxyError on failure."""
    kwargs = _call_kwargs(settings, model, messages, params)
    response, attempts = await _with_retries(settings, lambda: litellm.acompletion(**kwargs))
    choice = response.choices[0]
    usage = getattr(response, "usage", None)
    prompt = int(getattr(usage, "prompt_tokens", 0) or 0)
    completion = int(getattr(usage, "completion_tokens", 0) or 0)
    return SynthesisResult(
        content=choice.message.content or "",
        finish_reason=choice.finish_reason or "stop",
        model=getattr(response, "model", None) or model,
        usage={"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion},
        attempts=attempts,
    )


async def open_stream(
    settings: ProxySettings, model: str, messages: list[dict[str, Any]], params: dict[str, Any]
) -> AsyncIterator[dict[str, Any]]:
    """Start a streaming call and return an iterator of chunk dicts.

    The first chunk is awaited here, inside the retry loop, so connection errors, 429s and 5xx from the
    provider become proper HTTP errors before the 200 + SSE headers are sent.
    """
    kwargs = _call_kwargs(settings, model, messages, {**params, "stream": True})

    async def start():  # type: ignore[no-untyped-def]
        stream = await litellm.acompletion(**kwargs)
        iterator = stream.__aiter__()
        first = await iterator.__anext__()
        return iterator, first

    (iterator, first), _ = await _with_retries(settings, start)

    async def chunks() -> AsyncIterator[dict[str, Any]]:
        yield first.model_dump(exclude_none=True)
        try:
            async for chunk in iterator:
                yield chunk.model_dump(exclude_none=True)
        except StopAsyncIteration:
            return
        except Exception as exc:  # noqa: BLE001 - mid-stream failure becomes an SSE error event
            raise map_provider_error(exc) from None

    return chunks()
