"""Extractor failure never leaks the raw document upstream (unless the operator allows it); logs carry no
document text and no secrets."""

from __future__ import annotations

import openai
import pytest
from liquid_memory_proxy.app import build_extractor_from_settings
from liquid_memory_proxy.settings import ProxySettings
from liquid_memory_proxy.testing import Behaviour, FakeLLM, ServerThread

from tests.proxy.conftest import PLANTED

QUESTION = "What is the access code of the northern vault?"


@pytest.fixture()
def broken_vllm():
    """A real OpenAI-compatible server that answers every extraction call with HTTP 500."""
    llm = FakeLLM(behaviour=Behaviour(fail_status=500, fail_times=10**6))
    with ServerThread(llm.app()) as server:
        settings = ProxySettings(
            _env_file=None,
            extractor="vllm",
            vllm_base_url=server.url + "/v1",
            vllm_model="broken",
            extractor_timeout_s=5,
        )
        yield build_extractor_from_settings(settings), llm


def ask(url: str, document: str):
    c = openai.OpenAI(base_url=url + "/v1", api_key="sk-client-secret-DO-NOT-LOG", max_retries=0, timeout=60)
    return c.chat.completions.create(
        model="m", messages=[{"role": "user", "content": document}, {"role": "user", "content": QUESTION}]
    )


def test_failed_extraction_is_503_and_nothing_goes_upstream(make_proxy, upstream, broken_vllm, document, proxy_logs):
    extractor, vllm = broken_vllm
    url = make_proxy(extractor_override=extractor)
    with pytest.raises(openai.InternalServerError) as exc:
        ask(url, document)
    assert exc.value.status_code == 503 and exc.value.body["code"] == "extraction_failed"
    assert len(vllm.requests) >= 1  # the extractor really tried
    assert upstream.requests == []  # ... and the synthesis model got nothing
    assert "7319-KESTREL" not in str(exc.value.body)
    logs = "\n".join(proxy_logs)
    assert "extraction_failed" in logs
    assert "7319-KESTREL" not in logs and "northern vault" not in logs


def test_raw_fallback_only_when_operator_allows_it(make_proxy, upstream, broken_vllm, document):
    extractor, _ = broken_vllm
    url = make_proxy(extractor_override=extractor, allow_raw_document_fallback=True)
    resp = ask(url, document)
    assert resp.model_extra["liquid_memory"]["mode"] == "raw_fallback"
    assert document in upstream.prompt_text()


def test_logs_hold_no_document_text_or_secrets(proxy_url, upstream, document, proxy_logs):
    ask(proxy_url, document)
    logs = "\n".join(proxy_logs)
    assert '"event":"chat_completion"' in logs and '"event":"request"' in logs
    for fact, key in PLANTED.values():
        assert fact not in logs and key not in logs
    assert QUESTION not in logs
    assert "DO-NOT-LOG" not in logs  # neither the client's key nor the upstream key
    # a distinctive filler phrase of the document
    assert "forgotten recipe for plum cake" not in logs
