"""vLLM's in-process engine behind the extractor interface — for GPU hosts where `vllm` is importable.

Deliberately thin and untested here: this machine has no GPU and no `vllm` package, so only the import
guard is exercised. It batches all chunks into one `LLM.chat` call with JSON-schema guided decoding and
hands the raw outputs to the pipeline's repair path, exactly like the HTTP extractor. Prefer the HTTP
extractor (`vllm serve`) in production: it isolates the GPU process from the proxy.
"""

from __future__ import annotations

import asyncio
import importlib.util
from collections.abc import Sequence
from typing import Any

from liquid_memory_proxy.extractors.base import Extractor
from liquid_memory_proxy.extractors.prompt import FACTS_SCHEMA, messages
from liquid_memory_proxy.pipeline.types import Chunk, ChunkOutput


class VLLMEngineExtractor(Extractor):
    name = "vllm-engine"

    def __init__(self, model: str | None = None, max_tokens: int = 512, **engine_args: Any) -> None:
        if importlib.util.find_spec("vllm") is None:
            raise RuntimeError("the vllm-engine extractor needs the `vllm` package on a GPU host; use vllm-http")
        if not model:
            raise ValueError("the vllm-engine extractor needs model (a Hugging Face id or local path)")
        from vllm import LLM, SamplingParams
        from vllm.sampling_params import GuidedDecodingParams

        self._llm = LLM(model=model, **engine_args)
        self._params = SamplingParams(
            temperature=0.0, max_tokens=max_tokens, guided_decoding=GuidedDecodingParams(json=FACTS_SCHEMA)
        )

    async def extract(
        self, chunks: Sequence[Chunk], question: str, *, budget_tokens: int, concurrency: int = 8
    ) -> list[ChunkOutput]:
        convs = [messages(question, c.text) for c in chunks]
        outs = await asyncio.to_thread(self._llm.chat, convs, self._params, use_tqdm=False)
        return [ChunkOutput(chunk=c.index, raw=o.outputs[0].text) for c, o in zip(chunks, outs, strict=True)]

    async def health(self) -> dict[str, Any]:
        return {"ok": True, "extractor": self.name, "detail": "in-process vLLM engine loaded"}
