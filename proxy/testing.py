"""Local test servers: uvicorn in a background thread on 127.0.0.1 (random free port), and a small
OpenAI-compatible "upstream LLM" (`FakeLLM`) that records every request it receives.

Used by tests/proxy and the overhead benchmark. The fake upstream stands in only for the cloud LLM (the
unreachable network edge): it is a real local HTTP server speaking the OpenAI chat-completions protocol.
"""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route


class ServerThread:
    """Run an ASGI app under uvicorn in a daemon thread; `url` is http://127.0.0.1:<port>."""

    def __init__(self, app: Any) -> None:
        # proto=IPPROTO_TCP matters: asyncio sets TCP_NODELAY on accepted sockets only when the listening
        # socket says TCP; with proto=0 every keep-alive response waits ~40 ms for a delayed ACK.
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        config = uvicorn.Config(app, log_level="warning", access_log=False, lifespan="on")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.sock]}, daemon=True)

    def __enter__(self) -> ServerThread:
        self.thread.start()
        deadline = time.monotonic() + 120
        while not self.server.started:
            if not self.thread.is_alive():
                raise RuntimeError("server thread died during start-up")
            if time.monotonic() > deadline:
                raise RuntimeError("server did not start within 120 s")
            time.sleep(0.01)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)
        self.sock.close()


def closed_port_url() -> str:
    """A URL on which nothing listens (bind, read the port, close)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}"


@dataclass
class Behaviour:
    """What the fake upstream does next: fail `fail_times` requests with `fail_status`, or sleep first."""

    fail_status: int | None = None
    fail_times: int = 0
    delay_s: float = 0.0
    retry_after: str | None = None
    stream_break_after: int | None = None  # streaming: drop the connection after this many chunks


@dataclass
class FakeLLM:
    """OpenAI-compatible upstream. Answers with a fixed text that quotes counts from the prompt it got."""

    requests: list[dict[str, Any]] = field(default_factory=list)
    behaviour: Behaviour = field(default_factory=Behaviour)
    answer: str = "The answer, from the facts given."

    def reset(self, behaviour: Behaviour | None = None) -> None:
        self.requests.clear()
        self.behaviour = behaviour or Behaviour()

    def prompt_text(self, i: int = -1) -> str:
        """All message contents of recorded request `i`, joined (what the proxy forwarded)."""
        return "\n".join(str(m.get("content", "")) for m in self.requests[i]["messages"])

    def app(self) -> Starlette:
        async def chat(request: Request) -> Response:
            body = await request.json()
            self.requests.append(body)
            b = self.behaviour
            if b.delay_s:
                await asyncio.sleep(b.delay_s)
            if b.fail_status is not None and b.fail_times > 0:
                b.fail_times -= 1
                headers = {"retry-after": b.retry_after} if b.retry_after else {}
                err = {"error": {"message": f"upstream says {b.fail_status}", "type": "x", "code": None}}
                return JSONResponse(err, status_code=b.fail_status, headers=headers)
            prompt_tokens = sum(len(str(m.get("content", "")).split()) for m in body["messages"])
            completion_tokens = len(self.answer.split())
            if body.get("stream"):
                return StreamingResponse(self._stream(body, prompt_tokens), media_type="text/event-stream")
            return JSONResponse(
                {
                    "id": "chatcmpl-upstream",
                    "object": "chat.completion",
                    "created": int(time.time()),
                    "model": body["model"],
                    "choices": [
                        {
                            "index": 0,
                            "message": {"role": "assistant", "content": self.answer},
                            "finish_reason": "stop",
                        }
                    ],
                    "usage": {
                        "prompt_tokens": prompt_tokens,
                        "completion_tokens": completion_tokens,
                        "total_tokens": prompt_tokens + completion_tokens,
                    },
                }
            )

        async def models(_: Request) -> Response:
            return JSONResponse({"object": "list", "data": [{"id": "fake-model", "object": "model"}]})

        return Starlette(routes=[Route("/v1/chat/completions", chat, methods=["POST"]), Route("/v1/models", models)])

    async def _stream(self, body: dict[str, Any], prompt_tokens: int):  # type: ignore[no-untyped-def]
        words = self.answer.split(" ")
        base = {
            "id": "chatcmpl-upstream",
            "object": "chat.completion.chunk",
            "created": 0,
            "model": body["model"],
        }
        for i, word in enumerate(words):
            if self.behaviour.stream_break_after is not None and i >= self.behaviour.stream_break_after:
                raise ConnectionAbortedError("fake upstream drops the stream")
            delta = {"content": (" " if i else "") + word}
            if i == 0:
                delta["role"] = "assistant"
            yield f"data: {json.dumps({**base, 'choices': [{'index': 0, 'delta': delta}]})}\n\n"
            await asyncio.sleep(0)
        done = {**base, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}
        yield f"data: {json.dumps(done)}\n\n"
        if (body.get("stream_options") or {}).get("include_usage"):
            usage = {
                "prompt_tokens": prompt_tokens,
                "completion_tokens": len(words),
                "total_tokens": prompt_tokens + len(words),
            }
            yield f"data: {json.dumps({**base, 'choices': [], 'usage': usage})}\n\n"
        yield "data: [DONE]\n\n"
