"""End-to-end: the real `openai` client → proxy under uvicorn → LiteLLM → recording local upstream."""

from __future__ import annotations

import httpx
import openai
import pytest

from tests.proxy.conftest import PLANTED

QUESTION = "What is the access code of the northern vault?"


def client(url: str, **kw) -> openai.OpenAI:
    return openai.OpenAI(base_url=url + "/v1", api_key="sk-client", max_retries=0, **kw)


def test_document_is_compressed_and_facts_reach_the_synthesis_model(proxy_url, upstream, document):
    resp = client(proxy_url).chat.completions.create(
        model="gpt-4o",
        messages=[{"role": "user", "content": document}, {"role": "user", "content": QUESTION}],
        temperature=0.2,
        max_tokens=77,
        stop=["\n\nEND"],
    )
    assert resp.choices[0].message.content == upstream.answer
    assert resp.object == "chat.completion" and resp.choices[0].finish_reason == "stop"
    assert len(upstream.requests) == 1
    sent = upstream.requests[0]
    forwarded = upstream.prompt_text()
    # Smaller than the document, holds the planted fact, and none of the document verbatim in bulk.
    assert len(forwarded) < len(document) / 5, (len(forwarded), len(document))
    assert "7319-KESTREL" in forwarded
    assert sent["messages"][-1] == {"role": "user", "content": QUESTION}
    # Request parameters forwarded; the client's model gets SYNTHESIS_MODEL's provider.
    assert sent["model"] == "gpt-4o"
    assert sent["temperature"] == 0.2 and sent["max_tokens"] == 77 and sent["stop"] == ["\n\nEND"]
    # usage is the upstream's (the fake counts words), and the proxy's own accounting is an extension field.
    prompt_words = sum(len(str(m["content"]).split()) for m in sent["messages"])
    assert resp.usage.prompt_tokens == prompt_words
    assert resp.usage.completion_tokens == len(upstream.answer.split())
    ext = resp.model_extra["liquid_memory"]
    assert ext["mode"] == "compressed" and ext["input_tokens"] > ext["forwarded_tokens"] > 0
    assert ext["compression_ratio"] == pytest.approx(ext["input_tokens"] / ext["forwarded_tokens"], rel=0.05)
    assert ext["chunks_total"] >= 2 and ext["chunks_failed"] == 0
    assert set(ext["timings_ms"]) == {"extraction", "synthesis", "proxy_overhead"}


def test_every_planted_fact_survives_for_its_question(proxy_url, upstream, document):
    c = client(proxy_url)
    for question, (_, key) in PLANTED.items():
        upstream.reset()
        c.chat.completions.create(
            model="liquid-memory",
            messages=[{"role": "user", "content": document}, {"role": "user", "content": question}],
        )
        assert key in upstream.prompt_text(), question
        assert upstream.requests[0]["model"] == "fake-model"  # the alias maps to SYNTHESIS_MODEL


def test_system_assistant_and_text_parts(proxy_url, upstream, document):
    client(proxy_url).chat.completions.create(
        model="gpt-4o",
        messages=[
            {"role": "system", "content": "Answer in one sentence."},
            {"role": "user", "content": [{"type": "text", "text": document}]},
            {"role": "assistant", "content": "Which detail do you need?"},
            {"role": "user", "content": [{"type": "text", "text": QUESTION}]},
        ],
    )
    sent = upstream.requests[0]["messages"]
    assert [m["role"] for m in sent] == ["system", "user", "assistant", "user"]
    assert sent[0]["content"] == "Answer in one sentence." and sent[2]["content"] == "Which detail do you need?"
    assert "7319-KESTREL" in sent[1]["content"] and len(sent[1]["content"]) < len(document) / 5


def test_single_message_document_then_question_paragraph(proxy_url, upstream, document):
    resp = client(proxy_url).chat.completions.create(
        model="gpt-4o", messages=[{"role": "user", "content": document + "\n\n" + QUESTION}]
    )
    assert resp.model_extra["liquid_memory"]["mode"] == "compressed"
    sent = upstream.requests[0]["messages"]
    assert sent[-1]["content"] == QUESTION and "7319-KESTREL" in sent[-2]["content"]


def test_short_single_question_is_passed_through(proxy_url, upstream):
    resp = client(proxy_url).chat.completions.create(
        model="gpt-4o", messages=[{"role": "user", "content": "What is two plus two?"}]
    )
    assert resp.model_extra["liquid_memory"]["mode"] == "passthrough"
    assert upstream.requests[0]["messages"] == [{"role": "user", "content": "What is two plus two?"}]


def test_dry_run_returns_fact_pack_without_calling_upstream(proxy_url, upstream, document):
    resp = client(proxy_url).chat.completions.create(
        model="gpt-4o",
        messages=[{"role": "user", "content": document}, {"role": "user", "content": QUESTION}],
        extra_body={"dry_run": True},
    )
    assert upstream.requests == []
    assert "7319-KESTREL" in resp.choices[0].message.content
    ext = resp.model_extra["liquid_memory"]
    assert ext["dry_run"] is True and ext["upstream_messages"][-1]["content"] == QUESTION


def test_models_endpoint(proxy_url):
    ids = [m.id for m in client(proxy_url).models.list()]
    assert ids == ["liquid-memory", "openai/fake-model"]


def test_request_id_header_is_echoed_or_generated(proxy_url):
    r = httpx.get(proxy_url + "/v1/models", headers={"x-request-id": "abc-123"})
    assert r.headers["x-request-id"] == "abc-123"
    assert r.headers["server-timing"].startswith("proxy;dur=")
    r = httpx.get(proxy_url + "/v1/models", headers={"x-request-id": "bad id with spaces"})
    assert r.headers["x-request-id"].startswith("req_")


def test_foreign_provider_prefix_is_rejected(proxy_url, upstream):
    with pytest.raises(openai.BadRequestError) as err:
        client(proxy_url).chat.completions.create(
            model="anthropic/claude", messages=[{"role": "user", "content": "hi?"}]
        )
    assert err.value.body["code"] == "model_not_found" and err.value.body["param"] == "model"
    assert upstream.requests == []


def test_compress_min_tokens_forwards_short_documents_verbatim(make_proxy, upstream, document):
    url = make_proxy(compress_min_tokens=200)
    short_doc = "The northern vault code is 7319-KESTREL. The gate opens at dawn."
    resp = client(url).chat.completions.create(
        model="m", messages=[{"role": "user", "content": short_doc}, {"role": "user", "content": QUESTION}]
    )
    assert resp.model_extra["liquid_memory"]["mode"] == "below_compress_min_tokens"
    assert upstream.requests[0]["messages"][0] == {"role": "user", "content": short_doc}
    upstream.reset()
    resp = client(url).chat.completions.create(
        model="m", messages=[{"role": "user", "content": document}, {"role": "user", "content": QUESTION}]
    )
    assert resp.model_extra["liquid_memory"]["mode"] == "compressed"
    assert len(upstream.prompt_text()) < len(document) / 5
