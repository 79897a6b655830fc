"""The /v1 routes: chat completions (OpenAI shape, streaming), hybrid_chat, models."""

from __future__ import annotations

import json
import logging
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse, StreamingResponse
from liquid_memory_proxy import synthesis
from liquid_memory_proxy.auth import require_api_key
from liquid_memory_proxy.compression import Compressed, compress_document
from liquid_memory_proxy.errors import ProxyError, bad_request, not_implemented
from liquid_memory_proxy.messages import (
    hybrid_messages,
    passthrough_messages,
    split_messages,
    upstream_messages,
)
from liquid_memory_proxy.pipeline import count_tokens
from liquid_memory_proxy.schemas import ChatCompletionRequest, HybridChatRequest, HybridChatResponse, Usage
from liquid_memory_proxy.settings import PUBLIC_MODEL_ALIAS

log = logging.getLogger("liquid_memory_proxy.api")
router = APIRouter(prefix="/v1", dependencies=[Depends(require_api_key)])


def _request_id(request: Request) -> str:
    return getattr(request.state, "request_id", None) or f"req_{uuid.uuid4().hex}"


def _reject_unsupported(req: ChatCompletionRequest) -> None:
    if req.tools or req.functions:
        param = "tools" if req.tools else "functions"
        raise not_implemented(f"'{param}' is not supported by this proxy (no tool calling).", param=param)
    if req.n is not None and req.n > 1:
        raise not_implemented("n>1 is not supported by this proxy; send separate requests.", param="n")


def _accounting(compressed: Compressed | None, passthrough_tokens: int, extractor_name: str) -> dict[str, Any]:
    """The proxy's own token accounting (extension field `liquid_memory` in responses)."""
    if compressed is None:
        return {
            "mode": "passthrough",
            "input_tokens": passthrough_tokens,
            "forwarded_tokens": passthrough_tokens,
            "compression_ratio": 1.0,
            "chunks_total": 0,
            "chunks_failed": 0,
            "extractor": extractor_name,
        }
    return {"mode": compressed.mode, "extractor": extractor_name, **compressed.result.stats}


async def _prepare_chat(request: Request, req: ChatCompletionRequest):  # type: ignore[no-untyped-def]
    """Split the messages, compress the document part; returns (upstream messages, accounting, compressed)."""
    state = request.app.state
    split = split_messages(req.messages)
    if not split.has_document:
        messages = passthrough_messages(req.messages)
        tokens = count_tokens("\n".join(m["content"] for m in messages))
        if tokens > state.settings.passthrough_max_tokens:
            raise bad_request(
                f"The request is one block of {tokens} tokens with no separate question. Send the document "
                "and the question as separate user messages (document first, question last), or end "
                "the message with the question as its own paragraph.",
                param="messages",
                code="document_question_not_separable",
            )
        return messages, _accounting(None, tokens, state.extractor.name), None
    min_tokens = state.settings.compress_min_tokens
    if min_tokens and (doc_tokens := count_tokens(split.document)) < min_tokens:
        # The operator opted in (COMPRESS_MIN_TOKENS): short documents go upstream verbatim.
        messages = passthrough_messages(req.messages)
        accounting = _accounting(None, doc_tokens, state.extractor.name)
        accounting["mode"] = "below_compress_min_tokens"
        return messages, accounting, None
    compressed = await compress_document(
        split.document,
        split.question,
        settings=state.settings,
        extractor=state.extractor,
        metrics=state.metrics,
        request_id=_request_id(request),
    )
    messages = upstream_messages(split, compressed.result.fact_pack)
    return messages, _accounting(compressed, 0, state.extractor.name), compressed


@router.post("/chat/completions")
async def chat_completions(req: ChatCompletionRequest, request: Request):  # type: ignore[no-untyped-def]
    state = request.app.state
    t0 = time.perf_counter()
    rid = _request_id(request)
    _reject_unsupported(req)
    if req.dry_run and req.stream:
        raise bad_request("'dry_run' cannot be combined with 'stream'; send one of them.", param="dry_run")
    model = synthesis.resolve_model(req.model, state.settings)
    messages, accounting, compressed = await _prepare_chat(request, req)
    accounting["request_id"] = rid
    completion_id = f"chatcmpl-{uuid.uuid4().hex}"
    created = int(time.time())
    extraction_ms = compressed.extraction_ms if compressed else 0.0
    if req.dry_run:
        content = compressed.result.fact_pack if compressed else ""
        accounting["timings_ms"] = {"extraction": round(extraction_ms, 3), "synthesis": 0.0}
        return JSONResponse(
            {
                "id": completion_id,
                "object": "chat.completion",
                "created": created,
                "model": req.model,
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": content},
                        "finish_reason": "stop",
                    }
                ],
                "usage": {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0},
                "liquid_memory": {**accounting, "dry_run": True, "upstream_messages": messages},
            }
        )
    params = req.sampling_params()
    if req.stream:
        if req.stream_options and req.stream_options.include_usage:
            params["stream_options"] = {"include_usage": True}
        return await _stream_response(request, model, messages, params, accounting, completion_id, created)
    t_syn = time.perf_counter()
    try:
        result = await synthesis.complete(state.settings, model, messages, params)
    except ProxyError as err:
        state.metrics.synthesis_errors.labels(err.code or "unknown").inc()
        raise
    synthesis_ms = (time.perf_counter() - t_syn) * 1000
    state.metrics.stage.labels("synthesis").observe(synthesis_ms / 1000)
    state.metrics.prompt_tokens.inc(result.usage["prompt_tokens"])
    state.metrics.completion_tokens.inc(result.usage["completion_tokens"])
    total_ms = (time.perf_counter() - t0) * 1000
    accounting["synthesis_attempts"] = result.attempts
    accounting["timings_ms"] = {
        "extraction": round(extraction_ms, 3),
        "synthesis": round(synthesis_ms, 3),
        "proxy_overhead": round(total_ms - extraction_ms - synthesis_ms, 3),
    }
    log.info(
        "chat_completion",
        extra={
            "request_id": rid,
            "model": model,
            "mode": accounting["mode"],
            "input_tokens": accounting.get("input_tokens"),
            "forwarded_tokens": accounting.get("forwarded_tokens"),
            "chunks_failed": accounting.get("chunks_failed"),
            "prompt_tokens": result.usage["prompt_tokens"],
            "completion_tokens": result.usage["completion_tokens"],
            "extraction_ms": round(extraction_ms, 1),
            "synthesis_ms": round(synthesis_ms, 1),
            "attempts": result.attempts,
        },
    )
    # JSONResponse directly: skips FastAPI's jsonable_encoder walk over the dict (~1 ms per response).
    return JSONResponse(
        {
            "id": completion_id,
            "object": "chat.completion",
            "created": created,
            "model": result.model,
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": result.content},
                    "finish_reason": result.finish_reason,
                }
            ],
            "usage": result.usage,
            "liquid_memory": accounting,
        }
    )


def _sse(payload: dict[str, Any] | str) -> bytes:
    data = payload if isinstance(payload, str) else json.dumps(payload, separators=(",", ":"))
    return f"data: {data}\n\n".encode()


async def _stream_response(request, model, messages, params, accounting, completion_id, created):  # type: ignore[no-untyped-def]
    state = request.app.state
    try:
        chunks = await synthesis.open_stream(state.settings, model, messages, params)
    except ProxyError as err:
        state.metrics.synthesis_errors.labels(err.code or "unknown").inc()
        raise

    async def body() -> AsyncIterator[bytes]:
        first = True
        try:
            async for chunk in chunks:
                chunk["id"] = completion_id
                chunk["created"] = created
                chunk["object"] = "chat.completion.chunk"
                if first:
                    chunk["liquid_memory"] = accounting
                    first = False
                usage = chunk.get("usage")
                if usage:
                    state.metrics.prompt_tokens.inc(usage.get("prompt_tokens", 0) or 0)
                    state.metrics.completion_tokens.inc(usage.get("completion_tokens", 0) or 0)
                yield _sse(chunk)
        except ProxyError as err:
            state.metrics.synthesis_errors.labels(err.code or "unknown").inc()
            yield _sse(err.body())
        yield _sse("[DONE]")

    return StreamingResponse(body(), media_type="text/event-stream", headers={"cache-control": "no-cache"})


@router.post("/hybrid_chat", response_model=HybridChatResponse)
async def hybrid_chat(req: HybridChatRequest, request: Request) -> HybridChatResponse:
    state = request.app.state
    rid = _request_id(request)
    model = synthesis.resolve_model(req.model, state.settings)
    compressed = await compress_document(
        req.large_document,
        req.extraction_task,
        settings=state.settings,
        extractor=state.extractor,
        metrics=state.metrics,
        request_id=rid,
    )
    result = compressed.result
    stats = {
        **result.stats,
        "mode": compressed.mode,
        "extractor": state.extractor.name,
        "request_id": rid,
        "extraction_ms": round(compressed.extraction_ms, 3),
    }
    facts = [f.to_dict() for f in result.facts]
    if req.dry_run:
        return HybridChatResponse(
            id=f"hybrid-{uuid.uuid4().hex}",
            model=None,
            dry_run=True,
            final_response=None,
            fact_pack=result.fact_pack,
            facts=facts,
            stats=stats,
        )
    messages = hybrid_messages(result.fact_pack, req.final_user_prompt or req.extraction_task, req.system_prompt)
    t_syn = time.perf_counter()
    try:
        out = await synthesis.complete(state.settings, model, messages, req.sampling_params())
    except ProxyError as err:
        state.metrics.synthesis_errors.labels(err.code or "unknown").inc()
        raise
    stats["synthesis_ms"] = round((time.perf_counter() - t_syn) * 1000, 3)
    state.metrics.prompt_tokens.inc(out.usage["prompt_tokens"])
    state.metrics.completion_tokens.inc(out.usage["completion_tokens"])
    return HybridChatResponse(
        id=f"hybrid-{uuid.uuid4().hex}",
        model=out.model,
        dry_run=False,
        final_response=out.content,
        fact_pack=result.fact_pack,
        facts=facts,
        stats=stats,
        usage=Usage(**out.usage),
    )


@router.get("/models")
async def list_models(request: Request) -> dict[str, Any]:
    settings = request.app.state.settings
    ids = [PUBLIC_MODEL_ALIAS, settings.synthesis_model]
    created = request.app.state.started_at
    return {
        "object": "list",
        "data": [{"id": i, "object": "model", "created": created, "owned_by": "liquid-memory-proxy"} for i in ids],
    }
