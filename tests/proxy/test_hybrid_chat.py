"""POST /v1/hybrid_chat: explicit document / extraction task / final prompt, with provenance and dry_run."""

from __future__ import annotations

import httpx


def test_hybrid_chat_full(proxy_url, upstream, document):
    body = {
        "large_document": document,
        "extraction_task": "Find who signed the Harwick supply contract.",
        "final_user_prompt": "Name the signatory in three words.",
        "temperature": 0.1,
        "max_tokens": 20,
    }
    r = httpx.post(proxy_url + "/v1/hybrid_chat", json=body, timeout=60)
    assert r.status_code == 200, r.text
    out = r.json()
    assert out["final_response"] == upstream.answer and out["dry_run"] is False
    assert "Imelda Castellano" in out["fact_pack"]
    sent = upstream.requests[0]
    assert sent["messages"][-1]["content"] == "Name the signatory in three words."
    assert out["fact_pack"] in sent["messages"][-2]["content"]  # the exact text sent upstream
    assert sent["temperature"] == 0.1 and sent["max_tokens"] == 20
    for key in ("input_tokens", "forwarded_tokens", "compression_ratio", "chunks_total", "chunks_failed"):
        assert key in out["stats"], key
    assert out["stats"]["input_tokens"] > out["stats"]["forwarded_tokens"] > 0
    assert out["usage"]["prompt_tokens"] > 0
    # provenance: each fact's span points at the document; grounded facts appear there
    assert out["facts"]
    for fact in out["facts"]:
        assert 0 <= fact["start"] < fact["end"] <= len(document) and fact["chunk"] >= 0
    hit = [f for f in out["facts"] if "Imelda Castellano" in f["text"]]
    assert hit and "Imelda Castellano" in document[hit[0]["start"] : hit[0]["end"]]


def test_hybrid_chat_dry_run_makes_no_upstream_call(proxy_url, upstream, document):
    body = {
        "large_document": document,
        "extraction_task": "How much did the Orion refurbishment cost?",
        "dry_run": True,
    }
    r = httpx.post(proxy_url + "/v1/hybrid_chat", json=body, timeout=60)
    assert r.status_code == 200, r.text
    out = r.json()
    assert out["final_response"] is None and out["dry_run"] is True and out["usage"] is None
    assert "4.2 million euros" in out["fact_pack"]
    assert upstream.requests == []
