"""50 concurrent requests against the running server: 0 errors, every answer and upstream call accounted."""

from __future__ import annotations

import asyncio

import openai

from tests.proxy.conftest import make_document

N = 50


def test_fifty_concurrent_requests(proxy_url, upstream):
    document = make_document(n_paragraphs=6, seed=7)

    async def run() -> list:
        c = openai.AsyncOpenAI(base_url=proxy_url + "/v1", api_key="x", max_retries=0, timeout=120)
        tasks = [
            c.chat.completions.create(
                model="m",
                messages=[
                    {"role": "user", "content": document},
                    {
                        "role": "user",
                        "content": f"Request {i}: what is the access code of the northern vault?",
                    },
                ],
            )
            for i in range(N)
        ]
        try:
            return await asyncio.gather(*tasks, return_exceptions=True)
        finally:
            await c.close()

    results = asyncio.run(run())
    errors = [r for r in results if isinstance(r, BaseException)]
    assert errors == []
    assert all(r.choices[0].message.content == upstream.answer for r in results)
    assert len(upstream.requests) == N
    questions = sorted(r["messages"][-1]["content"] for r in upstream.requests)
    assert questions == sorted(f"Request {i}: what is the access code of the northern vault?" for i in range(N))
    assert all("7319-KESTREL" in upstream.prompt_text(i) for i in range(N))
