"""Bad inputs get the right status and OpenAI's error shape (not FastAPI's default, never a traceback)."""

from __future__ import annotations

import httpx
import openai
import pytest

GOOD_MESSAGES = [{"role": "user", "content": "some document text.\n\nquestion?"}]


def assert_openai_error(r: httpx.Response, status: int, *, code=None, param=None) -> dict:
    assert r.status_code == status, r.text
    body = r.json()
    assert set(body) == {"error"}, body
    err = body["error"]
    assert set(err) == {"message", "type", "param", "code"}, err
    assert isinstance(err["message"], str) and err["message"]
    assert "Traceback" not in r.text
    if code is not None:
        assert err["code"] == code, err
    if param is not None:
        assert err["param"] == param, err
    return err


def post(url: str, body=None, *, content=None, headers=None) -> httpx.Response:
    if content is not None:
        return httpx.post(url + "/v1/chat/completions", content=content, headers=headers or {}, timeout=30)
    return httpx.post(url + "/v1/chat/completions", json=body, headers=headers, timeout=30)


@pytest.mark.parametrize(
    ("body", "param", "code"),
    [
        ({"model": "m", "messages": []}, "messages", "invalid_type"),
        ({"model": "m"}, "messages", "missing_required_parameter"),
        ({"messages": GOOD_MESSAGES}, "model", "missing_required_parameter"),
        ({"model": "m", "messages": [{"role": "user", "content": 42}]}, "messages.0.content", "invalid_type"),
        (
            {"model": "m", "messages": [{"role": "user", "content": {"a": 1}}]},
            "messages.0.content",
            "invalid_type",
        ),
        ({"model": "m", "messages": [{"role": "wizard", "content": "x"}]}, "messages.0.role", "invalid_type"),
        ({"model": "m", "messages": "hello"}, "messages", "invalid_type"),
        ({"model": 5, "messages": GOOD_MESSAGES}, "model", "invalid_type"),
        ({"model": "m", "messages": GOOD_MESSAGES, "temperature": "hot"}, "temperature", "invalid_type"),
        ({"model": "m", "messages": GOOD_MESSAGES, "temperature": 7}, "temperature", "invalid_type"),
        ({"model": "m", "messages": GOOD_MESSAGES, "max_tokens": "many"}, "max_tokens", "invalid_type"),
        ({"model": "m", "messages": GOOD_MESSAGES, "max_tokens": 0}, "max_tokens", "invalid_type"),
        ({"model": "m", "messages": GOOD_MESSAGES, "stream": "yes"}, "stream", "invalid_type"),
        ({"model": "m", "messages": GOOD_MESSAGES, "stop": 3}, "stop", "invalid_type"),
        (
            {"model": "m", "messages": [{"role": "system", "content": "only system"}]},
            "messages",
            "missing_user_message",
        ),
        (
            {
                "model": "m",
                "messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {}}]}],
            },
            "messages.0.content.0",
            "unsupported_content_type",
        ),
    ],
)
def test_bad_bodies_are_400_with_param(proxy_url, upstream, body, param, code):
    assert_openai_error(post(proxy_url, body), 400, param=param, code=code)
    assert upstream.requests == []


@pytest.mark.parametrize("raw", [b"{not json", b"", b"[1, 2, 3]", b'"a string"', b"\xff\xfe"])
def test_invalid_json_body_is_400(proxy_url, raw):
    err = assert_openai_error(post(proxy_url, content=raw, headers={"content-type": "application/json"}), 400)
    assert err["type"] == "invalid_request_error"


def test_openai_client_sees_bad_request_error(proxy_url):
    c = openai.OpenAI(base_url=proxy_url + "/v1", api_key="x", max_retries=0)
    with pytest.raises(openai.BadRequestError) as exc:
        c.chat.completions.create(model="m", messages=[{"role": "user", "content": 42}])  # type: ignore[arg-type]
    assert exc.value.status_code == 400 and exc.value.body["param"] == "messages.0.content"


@pytest.mark.parametrize(
    ("extra", "param"),
    [
        ({"tools": [{"type": "function", "function": {"name": "f", "parameters": {}}}]}, "tools"),
        ({"functions": [{"name": "f", "parameters": {}}]}, "functions"),
        ({"n": 2}, "n"),
    ],
)
def test_unsupported_features_are_501_without_retry(proxy_url, upstream, extra, param):
    r = post(proxy_url, {"model": "m", "messages": GOOD_MESSAGES, **extra})
    assert_openai_error(r, 501, param=param, code="unsupported_feature")
    assert r.headers["x-should-retry"] == "false"
    assert upstream.requests == []


def test_openai_client_does_not_retry_501(proxy_url, upstream):
    c = openai.OpenAI(base_url=proxy_url + "/v1", api_key="x", max_retries=3)
    with pytest.raises(openai.APIStatusError) as exc:
        c.chat.completions.create(model="m", messages=GOOD_MESSAGES, n=3)
    assert exc.value.status_code == 501


def test_tool_role_message_is_501(proxy_url):
    body = {"model": "m", "messages": [*GOOD_MESSAGES, {"role": "tool", "content": "x", "tool_call_id": "1"}]}
    assert_openai_error(post(proxy_url, body), 501, param="messages.1.role")


def test_huge_document_is_400(make_proxy, upstream):
    url = make_proxy(max_document_chars=10_000)
    doc = "A sentence about nothing in particular. " * 1000  # 40k characters
    body = {"model": "m", "messages": [{"role": "user", "content": doc}, {"role": "user", "content": "q?"}]}
    err = assert_openai_error(post(url, body), 400, code="document_too_large")
    assert "MAX_DOCUMENT_CHARS" in err["message"]
    assert upstream.requests == []


def test_document_over_token_limit_is_400(make_proxy, upstream):
    url = make_proxy(max_document_tokens=500)
    doc = "A sentence about nothing in particular. " * 300
    body = {"model": "m", "messages": [{"role": "user", "content": doc}, {"role": "user", "content": "q?"}]}
    assert_openai_error(post(url, body), 400, code="document_too_large")
    assert upstream.requests == []


def test_too_many_chunks_is_400(make_proxy, upstream):
    url = make_proxy(max_chunks=2, chunk_tokens=64, chunk_overlap_tokens=8)
    doc = "A sentence about nothing in particular. " * 300
    body = {"model": "m", "messages": [{"role": "user", "content": doc}, {"role": "user", "content": "q?"}]}
    assert_openai_error(post(url, body), 400, code="document_too_large")
    assert upstream.requests == []


def test_body_over_byte_limit_is_413(make_proxy):
    url = make_proxy(max_request_bytes=4096)
    body = {"model": "m", "messages": [{"role": "user", "content": "x" * 10_000}]}
    assert_openai_error(post(url, body), 413, code="request_too_large")


def test_unseparable_single_block_is_400(make_proxy, upstream):
    url = make_proxy(passthrough_max_tokens=50)
    body = {"model": "m", "messages": [{"role": "user", "content": "word " * 400}]}
    assert_openai_error(post(url, body), 400, code="document_question_not_separable")
    assert upstream.requests == []


def test_unknown_route_and_wrong_method_are_openai_shaped(proxy_url):
    assert_openai_error(httpx.get(proxy_url + "/v1/nope"), 404)
    assert_openai_error(httpx.get(proxy_url + "/v1/chat/completions"), 405)


def test_hybrid_chat_validation(proxy_url, upstream):
    r = httpx.post(proxy_url + "/v1/hybrid_chat", json={"large_document": "", "extraction_task": "x"})
    assert_openai_error(r, 400, param="large_document")
    r = httpx.post(proxy_url + "/v1/hybrid_chat", json={"large_document": "doc", "extraction_task": 3})
    assert_openai_error(r, 400, param="extraction_task")
    r = httpx.post(proxy_url + "/v1/hybrid_chat", json={"large_document": "doc"})
    assert_openai_error(r, 400, param="extraction_task", code="missing_required_parameter")
    r = httpx.post(proxy_url + "/v1/hybrid_chat", json={"large_document": "d", "extraction_task": "t", "dry": 1})
    assert_openai_error(r, 400, param="dry")
    assert upstream.requests == []


def test_unexpected_exception_is_500_openai_shaped_without_traceback(upstream_server, extractor, proxy_logs):
    from liquid_memory_proxy.app import create_app
    from liquid_memory_proxy.settings import ProxySettings
    from liquid_memory_proxy.testing import ServerThread

    app = create_app(ProxySettings(_env_file=None), extractor=extractor)

    @app.get("/v1/boom")
    async def boom():
        raise RuntimeError("secret document sentence that must not be logged")

    with ServerThread(app) as server:
        r = httpx.get(server.url + "/v1/boom")
    err = assert_openai_error(r, 500, code="internal_error")
    assert r.headers["x-request-id"] in err["message"]
    logs = "\n".join(proxy_logs)
    assert "RuntimeError" in logs and "secret document sentence" not in logs
    assert "secret document sentence" not in r.text


@pytest.mark.parametrize(("field", "value"), [("max_tokens", "5"), ("temperature", "0.5"), ("n", "1")])
def test_numeric_strings_are_rejected_like_openai(proxy_url, field, value):
    body = {"model": "m", "messages": GOOD_MESSAGES, field: value}
    assert_openai_error(post(proxy_url, body), 400, param=field, code="invalid_type")


def test_dry_run_with_stream_is_400(proxy_url, upstream):
    body = {"model": "m", "messages": GOOD_MESSAGES, "dry_run": True, "stream": True}
    assert_openai_error(post(proxy_url, body), 400, param="dry_run")
    assert upstream.requests == []
