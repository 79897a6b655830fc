"""The vLLM HTTP extractor against a real local OpenAI-compatible server (uvicorn on 127.0.0.1) that
records requests: JSON-schema `response_format`, concurrent chunk requests, repair and error counting."""

from __future__ import annotations

import asyncio
import json
import re

from liquid_memory_proxy.extractors import build_extractor
from liquid_memory_proxy.extractors.prompt import FACTS_SCHEMA
from liquid_memory_proxy.pipeline import CompressionConfig, compress
from liquid_memory_proxy.testing import ServerThread, closed_port_url
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route


class FakeVLLM:
    """Answers each chunk with the chunk's sentences mentioning 'code' as fact JSON, after a delay; the
    chunk holding the depot code gets truncated JSON, a chunk marked BROKEN gets HTTP 500."""

    def __init__(self, delay_s: float = 0.3) -> None:
        self.delay_s = delay_s
        self.bodies: list[dict] = []
        self.in_flight = 0
        self.max_in_flight = 0

    def app(self) -> Starlette:
        async def chat(request: Request) -> JSONResponse:
            body = await request.json()
            self.bodies.append(body)
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
            try:
                await asyncio.sleep(self.delay_s)
            finally:
                self.in_flight -= 1
            text = body["messages"][-1]["content"].split("Text:\n", 1)[1]
            if "BROKEN" in text:
                return JSONResponse({"error": {"message": "engine died"}}, status_code=500)
            facts = [s.strip() for s in re.split(r"(?<=\.)\s", text) if "code" in s]
            content = json.dumps({"facts": facts})
            if "55-ALDER" in text:
                content = content[:-3]  # the fact's chunk gets truncated JSON: it must be repaired
            return JSONResponse({"choices": [{"index": 0, "message": {"role": "assistant", "content": content}}]})

        async def models(_: Request) -> JSONResponse:
            return JSONResponse({"object": "list", "data": [{"id": "served-model"}]})

        return Starlette(routes=[Route("/v1/chat/completions", chat, methods=["POST"]), Route("/v1/models", models)])


def _doc() -> str:
    parts = []
    for i in range(8):
        extra = " BROKEN marker." if i == 5 else ""
        parts.append(f"Section {i} is about weather and tides in the bay near pier {i}." * 6 + extra)
    parts[3] += " The secret code of the depot is 55-ALDER."
    return "\n\n".join(parts)


def test_structured_outputs_concurrency_and_repair() -> None:
    fake = FakeVLLM()
    with ServerThread(fake.app()) as server:
        ex = build_extractor(
            "vllm", base_url=server.url + "/v1", model="served-model", api_key="test-key", timeout_s=10
        )
        config = CompressionConfig(chunk_tokens=96, overlap_tokens=0, target_ratio=None, concurrency=4)

        async def run():  # noqa: ANN202
            try:
                return await compress(_doc(), "What is the depot code?", config, ex), await ex.health()
            finally:
                await ex.aclose()

        result, health = asyncio.run(run())
    n = result.stats["chunks_total"]
    assert n >= 6 and len(fake.bodies) == n
    for body in fake.bodies:
        assert body["model"] == "served-model" and body["temperature"] == 0.0
        fmt = body["response_format"]
        assert fmt["type"] == "json_schema" and fmt["json_schema"]["schema"] == FACTS_SCHEMA
        assert body["messages"][0]["role"] == "system"
    assert fake.max_in_flight == 4  # chunks were sent concurrently, bounded by the pipeline's concurrency
    assert "55-ALDER" in result.fact_pack
    assert result.stats["chunks_errored"] == 1 and result.stats["chunks_raw_evidence"] == 1
    assert result.stats["chunks_repaired"] + result.stats["chunks_regex"] == 1
    assert health["ok"] is True


def test_health_reports_unreachable_server() -> None:
    ex = build_extractor("vllm-http", base_url=closed_port_url() + "/v1", model="m")
    health = asyncio.run(ex.health())
    assert health["ok"] is False and "cannot reach" in health["detail"]
