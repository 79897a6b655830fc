"""stream=True: the synthesis is relayed as SSE chunks the OpenAI client understands."""

from __future__ import annotations

import json

import httpx
import openai
import pytest
from liquid_memory_proxy.testing import Behaviour


def client(url: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=url + "/v1", api_key="x", max_retries=0, timeout=30)


def test_stream_relays_chunks(proxy_url, upstream, document):
    stream = client(proxy_url).chat.completions.create(
        model="gpt-4o",
        messages=[
            {"role": "user", "content": document},
            {"role": "user", "content": "Who signed the contract?"},
        ],
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == upstream.answer
    assert len([c for c in chunks if c.choices and c.choices[0].delta.content]) == len(upstream.answer.split(" "))
    assert len({c.id for c in chunks}) == 1 and chunks[0].id.startswith("chatcmpl-")
    assert chunks[0].model_extra["liquid_memory"]["mode"] == "compressed"
    assert any(c.choices and c.choices[0].finish_reason == "stop" for c in chunks)
    usage = [c.usage for c in chunks if c.usage]
    assert usage and usage[-1].completion_tokens == len(upstream.answer.split(" "))
    sent = upstream.requests[0]
    assert sent["stream"] is True and len(upstream.prompt_text()) < len(document) / 5


def test_stream_wire_format_ends_with_done(proxy_url, upstream):
    body = {"model": "m", "stream": True, "messages": [{"role": "user", "content": "doc line.\n\nq?"}]}
    with httpx.stream("POST", proxy_url + "/v1/chat/completions", json=body, timeout=30) as r:
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
        events = [line for line in r.iter_lines() if line]
    assert all(e.startswith("data: ") for e in events)
    assert events[-1] == "data: [DONE]"


def test_stream_upstream_429_is_an_http_429_before_streaming(proxy_url, upstream):
    upstream.reset(Behaviour(fail_status=429, fail_times=99))
    with pytest.raises(openai.RateLimitError):
        client(proxy_url).chat.completions.create(
            model="m", messages=[{"role": "user", "content": "doc.\n\nq?"}], stream=True
        )
    assert len(upstream.requests) == 3


def test_stream_recovers_from_one_500(proxy_url, upstream):
    upstream.reset(Behaviour(fail_status=500, fail_times=1))
    stream = client(proxy_url).chat.completions.create(
        model="m", messages=[{"role": "user", "content": "doc.\n\nq?"}], stream=True
    )
    assert "".join(c.choices[0].delta.content or "" for c in stream if c.choices) == upstream.answer


def test_stream_broken_midway_ends_with_error_event(proxy_url, upstream):
    upstream.reset(Behaviour(stream_break_after=2))
    body = {"model": "m", "stream": True, "messages": [{"role": "user", "content": "doc line.\n\nq?"}]}
    with httpx.stream("POST", proxy_url + "/v1/chat/completions", json=body, timeout=30) as r:
        assert r.status_code == 200
        events = [line for line in r.iter_lines() if line]
    assert events[-1] == "data: [DONE]"
    payloads = [json.loads(e[6:]) for e in events[:-1]]
    text = "".join(p["choices"][0]["delta"].get("content", "") for p in payloads if p.get("choices"))
    assert text == " ".join(upstream.answer.split(" ")[:2])
    assert "error" in payloads[-1] and payloads[-1]["error"]["type"] == "server_error"
