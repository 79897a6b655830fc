"""Extraction backends behind one interface, chosen by configuration.

build_extractor("builtin")                        # default: extractive, BM25 + MiniLM, no generative model
build_extractor("bm25")                           # keyword baseline (benchmark row)
build_extractor("smollm2")                        # SmolLM2-135M-Instruct on CPU (transformers + GGUF)
build_extractor("vllm-http", base_url=..., model=...)  # vLLM's OpenAI-compatible server
build_extractor("vllm-engine", model=...)         # in-process vLLM (GPU hosts only)
"""

from __future__ import annotations

import inspect
from typing import Any

from liquid_memory_proxy.extractors.base import Extractor

EXTRACTORS = ("builtin", "bm25", "smollm2", "vllm-http", "vllm-engine")


def _extractor_class(key: str) -> type[Extractor]:
    if key in ("builtin", "extractive"):
        from liquid_memory_proxy.extractors.builtin import BuiltinExtractor

        return BuiltinExtractor
    if key in ("bm25", "keyword"):
        from liquid_memory_proxy.extractors.keyword import KeywordExtractor

        return KeywordExtractor
    if key in ("smollm2", "smollm", "local"):
        from liquid_memory_proxy.extractors.smollm import SmolLM2Extractor

        return SmolLM2Extractor
    if key in ("vllm-http", "vllm", "openai-http"):
        from liquid_memory_proxy.extractors.vllm_http import VLLMHTTPExtractor

        return VLLMHTTPExtractor
    if key == "vllm-engine":
        from liquid_memory_proxy.extractors.vllm_engine import VLLMEngineExtractor

        return VLLMEngineExtractor
    raise ValueError(f"unknown extractor {key!r}; choose one of {', '.join(EXTRACTORS)}")


def build_extractor(name: str, **options: Any) -> Extractor:
    """Build the extractor called `name` (see EXTRACTORS); unknown names raise ValueError.

    Options the chosen extractor does not take, and options set to None, are ignored, so one settings
    object can configure every backend (e.g. `base_url` only matters to vllm-http).
    """
    cls = _extractor_class(name.strip().lower().replace("_", "-"))
    params = inspect.signature(cls.__init__).parameters
    accepted = {k: v for k, v in options.items() if v is not None and k in params}
    return cls(**accepted)


__all__ = ["EXTRACTORS", "Extractor", "build_extractor"]
