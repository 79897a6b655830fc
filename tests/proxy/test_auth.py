"""Optional API keys: Authorization: Bearer <key> on /v1 routes when PROXY_API_KEYS is set."""

from __future__ import annotations

import httpx
import openai
import pytest

MESSAGES = [{"role": "user", "content": "doc line.\n\nq?"}]


@pytest.fixture()
def secured(make_proxy) -> str:
    return make_proxy(proxy_api_keys="key-one,key-two")


def test_missing_key_is_401(secured, upstream):
    r = httpx.post(secured + "/v1/chat/completions", json={"model": "m", "messages": MESSAGES})
    assert r.status_code == 401 and r.json()["error"]["code"] == "invalid_api_key"
    assert r.headers["www-authenticate"] == "Bearer"
    assert upstream.requests == []


def test_wrong_key_is_401_for_openai_client(secured, upstream):
    c = openai.OpenAI(base_url=secured + "/v1", api_key="key-three", max_retries=0)
    with pytest.raises(openai.AuthenticationError) as exc:
        c.chat.completions.create(model="m", messages=MESSAGES)
    assert exc.value.body["type"] == "invalid_request_error"
    with pytest.raises(openai.AuthenticationError):
        c.models.list()
    assert upstream.requests == []


@pytest.mark.parametrize("key", ["key-one", "key-two"])
def test_right_key_passes(secured, upstream, key):
    c = openai.OpenAI(base_url=secured + "/v1", api_key=key, max_retries=0)
    assert c.chat.completions.create(model="m", messages=MESSAGES).choices[0].message.content == upstream.answer


def test_non_bearer_scheme_is_401(secured):
    r = httpx.get(secured + "/v1/models", headers={"authorization": "Basic a2V5LW9uZTo="})
    assert r.status_code == 401


def test_health_and_metrics_stay_open(secured):
    assert httpx.get(secured + "/health/liveliness").status_code == 200
    assert httpx.get(secured + "/metrics").status_code == 200


def test_no_keys_configured_means_open(proxy_url):
    assert httpx.get(proxy_url + "/v1/models").status_code == 200
