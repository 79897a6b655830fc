"""Synthesis backend failures (429, 5xx, timeout, down): retries, then the right OpenAI-shaped error."""

from __future__ import annotations

import openai
import pytest
from liquid_memory_proxy.testing import Behaviour, closed_port_url

MESSAGES = [{"role": "user", "content": "A short document line.\n\nWhat does it say?"}]


def client(url: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=url + "/v1", api_key="x", max_retries=0, timeout=30)


def test_transient_429_is_retried_then_succeeds(proxy_url, upstream):
    upstream.reset(Behaviour(fail_status=429, fail_times=1, retry_after="0"))
    resp = client(proxy_url).chat.completions.create(model="m", messages=MESSAGES)
    assert resp.choices[0].message.content == upstream.answer
    assert len(upstream.requests) == 2
    assert resp.model_extra["liquid_memory"]["synthesis_attempts"] == 2


def test_transient_500_is_retried_then_succeeds(proxy_url, upstream):
    upstream.reset(Behaviour(fail_status=500, fail_times=2))
    resp = client(proxy_url).chat.completions.create(model="m", messages=MESSAGES)
    assert resp.choices[0].message.content == upstream.answer
    assert len(upstream.requests) == 3


def test_persistent_429_is_429_after_retries(proxy_url, upstream):
    upstream.reset(Behaviour(fail_status=429, fail_times=99))
    with pytest.raises(openai.RateLimitError) as exc:
        client(proxy_url).chat.completions.create(model="m", messages=MESSAGES)
    assert exc.value.body["code"] == "upstream_rate_limited" and exc.value.body["type"] == "rate_limit_error"
    assert len(upstream.requests) == 3  # 1 + SYNTHESIS_MAX_RETRIES(2)


@pytest.mark.parametrize("status", [500, 502, 503])
def test_persistent_5xx_is_502(proxy_url, upstream, status):
    upstream.reset(Behaviour(fail_status=status, fail_times=99))
    with pytest.raises(openai.InternalServerError) as exc:
        client(proxy_url).chat.completions.create(model="m", messages=MESSAGES)
    assert exc.value.status_code == 502 and exc.value.body["code"] == "upstream_error"
    assert exc.value.response.headers["x-should-retry"] == "false"  # the proxy already retried
    assert len(upstream.requests) == 3


def test_openai_sdk_does_not_multiply_proxy_retries(proxy_url, upstream):
    upstream.reset(Behaviour(fail_status=500, fail_times=99))
    sdk = openai.OpenAI(base_url=proxy_url + "/v1", api_key="x", max_retries=2, timeout=30)
    with pytest.raises(openai.InternalServerError):
        sdk.chat.completions.create(model="m", messages=MESSAGES)
    assert len(upstream.requests) == 3


def test_upstream_400_is_not_retried(proxy_url, upstream):
    upstream.reset(Behaviour(fail_status=400, fail_times=99))
    with pytest.raises(openai.BadRequestError) as exc:
        client(proxy_url).chat.completions.create(model="m", messages=MESSAGES)
    assert exc.value.body["code"] == "upstream_bad_request"
    assert len(upstream.requests) == 1


def test_upstream_auth_failure_is_502_and_hides_the_key(proxy_url, upstream):
    upstream.reset(Behaviour(fail_status=401, fail_times=99))
    with pytest.raises(openai.InternalServerError) as exc:
        client(proxy_url).chat.completions.create(model="m", messages=MESSAGES)
    assert exc.value.status_code == 502 and exc.value.body["code"] == "upstream_auth_error"
    assert "DO-NOT-LOG" not in str(exc.value.body)
    assert len(upstream.requests) == 1


def test_timeout_is_504(make_proxy, upstream):
    url = make_proxy(synthesis_timeout_s=0.3, synthesis_max_retries=1)
    upstream.reset(Behaviour(delay_s=2.0))
    with pytest.raises(openai.APIStatusError) as exc:
        client(url).chat.completions.create(model="m", messages=MESSAGES)
    assert exc.value.status_code == 504 and exc.value.body["code"] == "upstream_timeout"
    assert len(upstream.requests) == 2


def test_backend_down_is_502(make_proxy):
    url = make_proxy(synthesis_api_base=closed_port_url() + "/v1", synthesis_max_retries=1)
    with pytest.raises(openai.InternalServerError) as exc:
        client(url).chat.completions.create(model="m", messages=MESSAGES)
    assert exc.value.status_code == 502 and exc.value.body["code"] == "upstream_unavailable"
