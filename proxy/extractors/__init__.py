"""Extraction backends behind one interface, chosen by configuration.

build_extractor("builtin")                        # default: extractive, BM25 + MiniLM, no generative model
build_extractor("bm25")                           # keyword baseline (benchmark row)
build_extractor("smollm2")                        # SmolLM2-135M-Instruct on CPU (transformers + GGUF)
build_extractor("vllm-http", base_url=..., model=...)  # vLLM's OpenAI-compatible server
build_extractor("vllm-engine", model=...)         # in-process vLLM (GPU hosts only)
"""

from __future__ import annotations

from typing import Any

from liquid_memory_proxy.extractors.base import Extractor

EXTRACTORS = ("builtin", "bm25", "smollm2", "vllm-http", "vllm-engine")


def build_extractor(name: str, **options: Any) -> Extractor:
    """Build the extractor called `name` (see EXTRACTORS); unknown names raise ValueError."""
    key = name.strip().lower().replace("_", "-")
    if key in ("builtin", "extractive"):
        from liquid_memory_proxy.extractors.builtin import BuiltinExtractor

        return BuiltinExtractor(**options)
    if key in ("bm25", "keyword"):
        from liquid_memory_proxy.extractors.keyword import KeywordExtractor

        return KeywordExtractor(**options)
    if key in ("smollm2", "smollm", "local"):
        from liquid_memory_proxy.extractors.smollm import SmolLM2Extractor

        return SmolLM2Extractor(**options)
    if key in ("vllm-http", "vllm", "openai-http"):
        from liquid_memory_proxy.extractors.vllm_http import VLLMHTTPExtractor

        return VLLMHTTPExtractor(**options)
    if key == "vllm-engine":
        from liquid_memory_proxy.extractors.vllm_engine import VLLMEngineExtractor

        return VLLMEngineExtractor(**options)
    raise ValueError(f"unknown extractor {name!r}; choose one of {', '.join(EXTRACTORS)}")


__all__ = ["EXTRACTORS", "Extractor", "build_extractor"]
