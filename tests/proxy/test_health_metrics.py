"""Liveness, readiness (extractor + synthesis + SDK), and Prometheus metrics."""

from __future__ import annotations

import re

import httpx
import openai
from liquid_memory_proxy.testing import closed_port_url

import liquid_memory


def test_liveliness(proxy_url):
    r = httpx.get(proxy_url + "/health/liveliness")
    assert r.status_code == 200 and r.json() == {"status": "alive"}


def test_readiness_reports_extractor_synthesis_and_sdk(proxy_url):
    r = httpx.get(proxy_url + "/health/readiness", timeout=30)
    body = r.json()
    assert r.status_code == 200, body
    assert body["status"] == "ready"
    assert body["extractor"]["ok"] is True and body["extractor"]["name"]
    assert body["synthesis"] == {
        "model": "openai/fake-model",
        "ok": True,
        "probed": True,
        "status": "reachable",
    }
    assert body["sdk"]["available"] is True and body["sdk"]["version"] == liquid_memory.__version__
    assert "licence" in body["sdk"] and body["sdk"]["licence"]["status"] in (
        "valid",
        "missing",
        "invalid",
        "unavailable",
    )
    dist = body["sdk"]["distribution"]["status"]
    assert dist in ("verified", "invalid", "no_distribution", "unavailable")


def test_readiness_is_503_when_synthesis_is_down(make_proxy):
    url = make_proxy(synthesis_api_base=closed_port_url() + "/v1")
    r = httpx.get(url + "/health/readiness", timeout=30)
    assert r.status_code == 503
    assert r.json()["status"] == "not_ready" and r.json()["synthesis"]["status"] == "unreachable"


def metric(text: str, name: str, labels: str = "") -> float:
    pattern = re.escape(name) + (r"\{" + labels + r"\}" if labels else "") + r" ([0-9.e+-]+)"
    m = re.search(pattern, text)
    assert m, f"{name}{{{labels}}} not in metrics"
    return float(m.group(1))


def test_metrics_count_requests_tokens_and_compression(proxy_url, upstream, document):
    c = openai.OpenAI(base_url=proxy_url + "/v1", api_key="x", max_retries=0)
    resp = c.chat.completions.create(
        model="m",
        messages=[{"role": "user", "content": document}, {"role": "user", "content": "Who signed it?"}],
    )
    ext = resp.model_extra["liquid_memory"]
    text = httpx.get(proxy_url + "/metrics").text
    assert metric(text, "lmproxy_requests_total", 'endpoint="/v1/chat/completions",status="200"') == 1
    assert metric(text, "lmproxy_document_tokens_in_total") == ext["input_tokens"]
    assert metric(text, "lmproxy_tokens_forwarded_total") == ext["forwarded_tokens"]
    assert metric(text, "lmproxy_synthesis_prompt_tokens_total") == resp.usage.prompt_tokens
    assert metric(text, "lmproxy_synthesis_completion_tokens_total") == resp.usage.completion_tokens
    assert metric(text, "lmproxy_compression_ratio_count") == 1
    assert metric(text, "lmproxy_compression_ratio_sum") == ext["compression_ratio"]
    assert metric(text, "lmproxy_request_latency_seconds_count", 'endpoint="/v1/chat/completions"') == 1
    assert metric(text, "lmproxy_extraction_failures_total") == 0
    # bad requests are counted with their status
    httpx.post(proxy_url + "/v1/chat/completions", json={"model": "m", "messages": []})
    text = httpx.get(proxy_url + "/metrics").text
    assert metric(text, "lmproxy_requests_total", 'endpoint="/v1/chat/completions",status="400"') == 1
