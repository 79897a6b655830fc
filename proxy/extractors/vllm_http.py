"""vLLM over HTTP: the production extractor on a GPU host, through vLLM's OpenAI-compatible server.

Each chunk is one `POST {base_url}/chat/completions` with `response_format={"type": "json_schema", ...}`
(vLLM's structured outputs guarantee schema-valid JSON), sent concurrently (up to the pipeline's
`concurrency`). Any OpenAI-compatible server works; the repair path still guards against servers that
ignore `response_format`. Start vLLM on a GPU host, e.g.:

    vllm serve HuggingFaceTB/SmolLM2-1.7B-Instruct --host 127.0.0.1 --port 8001 --max-model-len 8192
    vllm serve Qwen/Qwen2.5-7B-Instruct --port 8001 --gpu-memory-utilization 0.85 --api-key "$VLLM_API_KEY"

then run the proxy with EXTRACTOR=vllm VLLM_BASE_URL=http://127.0.0.1:8001/v1 VLLM_MODEL=<served name>.
"""

from __future__ import annotations

import time
from typing import Any

import httpx
from liquid_memory_proxy.extractors.base import Extractor
from liquid_memory_proxy.extractors.prompt import FACTS_SCHEMA, messages
from liquid_memory_proxy.pipeline.types import Chunk, ChunkOutput


class VLLMHTTPExtractor(Extractor):
    """Chunk-parallel fact extraction against an OpenAI-compatible `/chat/completions` endpoint."""

    name = "vllm-http"

    def __init__(
        self,
        base_url: str | None = None,
        model: str | None = None,
        api_key: str | None = None,
        timeout_s: float = 60.0,
        max_tokens: int = 512,
        client: httpx.AsyncClient | None = None,
    ) -> None:
        if not base_url or not model:
            raise ValueError(
                "the vLLM extractor needs base_url (e.g. http://127.0.0.1:8001/v1) and model "
                "(the name vLLM serves); set VLLM_BASE_URL and VLLM_MODEL"
            )
        self.base_url = base_url.rstrip("/")
        self.model = model
        self.max_tokens = max_tokens
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._client = client or httpx.AsyncClient(
            timeout=httpx.Timeout(timeout_s), headers=headers, limits=httpx.Limits(max_connections=64)
        )

    def request_body(self, chunk: Chunk, question: str) -> dict[str, Any]:
        """The JSON body for one chunk (structured output via a JSON schema)."""
        return {
            "model": self.model,
            "messages": messages(question, chunk.text),
            "temperature": 0.0,
            "max_tokens": self.max_tokens,
            "response_format": {
                "type": "json_schema",
                "json_schema": {"name": "facts", "schema": FACTS_SCHEMA, "strict": True},
            },
        }

    async def extract_chunk(self, chunk: Chunk, question: str) -> ChunkOutput:
        resp = await self._client.post(f"{self.base_url}/chat/completions", json=self.request_body(chunk, question))
        if resp.status_code != 200:
            return ChunkOutput(chunk=chunk.index, error=f"HTTP {resp.status_code} from the vLLM server")
        try:
            content = resp.json()["choices"][0]["message"]["content"]
        except (ValueError, KeyError, IndexError, TypeError):
            return ChunkOutput(chunk=chunk.index, error="the vLLM server's reply is not a chat completion")
        return ChunkOutput(chunk=chunk.index, raw=content if isinstance(content, str) else None)

    async def health(self) -> dict[str, Any]:
        t0 = time.perf_counter()
        try:
            resp = await self._client.get(f"{self.base_url}/models", timeout=5.0)
            ok = resp.status_code == 200
            detail = "ready" if ok else f"HTTP {resp.status_code} from {self.base_url}/models"
        except httpx.HTTPError as exc:
            ok, detail = False, f"{type(exc).__name__}: cannot reach the vLLM server"
        return {
            "ok": ok,
            "extractor": self.name,
            "model": self.model,
            "detail": detail,
            "seconds": round(time.perf_counter() - t0, 3),
        }

    async def aclose(self) -> None:
        await self._client.aclose()
