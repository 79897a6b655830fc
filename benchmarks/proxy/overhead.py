"""Proxy overhead benchmark: time a request spends in the proxy *excluding* extraction and synthesis.

    python -m benchmarks proxy-overhead [--requests 200] [--doc-tokens 8000] [--concurrency 50] [--json PATH]

Runs the real app under uvicorn on 127.0.0.1 with a local OpenAI-compatible upstream (liquid_memory_proxy.
testing.FakeLLM) in a child process, sends sequential requests from this process with a keep-alive HTTP
client and reports, per scenario:
  client_ms        wall time seen by the client
  extraction_ms    pipeline time reported by the proxy (timings_ms.extraction)
  synthesis_ms     LiteLLM call incl. the upstream round trip (timings_ms.synthesis)
  overhead_ms      client_ms - extraction_ms - synthesis_ms  (HTTP parsing, validation, routing, message
                   handling, JSON encoding, middleware, loopback transfer of the request body)
  server_overhead_ms  the same, but timed inside the server (Server-Timing header: request arrival → response
                   start; excludes the client library and the loopback transfer)
  handler_ms       the part of overhead_ms measured inside the route handler (timings_ms.proxy_overhead)
  direct_ms        the same upstream called directly with httpx (so synthesis_ms - direct_ms ≈ LiteLLM's cost)
Then `--concurrency` requests of each scenario at once: errors, wall time, latency p50/p95.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import random
import socket
import statistics
import time
from pathlib import Path
from typing import Any

import httpx

from benchmarks.output import write_bar_png

_WORDS = (
    "river market engine harbour winter ledger garden council signal copper station letter bridge archive "
    "lantern orchard meadow factory journal quarry meeting budget schedule contract witness valley"
).split()


def synthetic_document(n_tokens: int, seed: int = 0) -> str:
    """Deterministic filler prose of roughly n_tokens tokens, with one planted fact in the middle."""
    rng = random.Random(seed)
    sentences, words = [], 0
    while words < n_tokens * 0.75:
        n = rng.randint(8, 16)
        sentences.append(" ".join(rng.choice(_WORDS) for _ in range(n)).capitalize() + ".")
        words += n
    sentences.insert(len(sentences) // 2, "The vault access code is 7319-KESTREL.")
    return " ".join(sentences)


def _pct(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))]


def _summary(rows: list[dict[str, float]]) -> dict[str, float]:
    out = {}
    for key in rows[0]:
        vals = [r[key] for r in rows]
        out[f"{key}_p50"] = round(statistics.median(vals), 3)
        out[f"{key}_p95"] = round(_pct(vals, 0.95), 3)
    return out


def _serve(extractor: str, urls, stop) -> None:  # type: ignore[no-untyped-def]
    """Child process: the local upstream and the proxy under uvicorn until `stop` is set."""
    from liquid_memory_proxy.app import create_app
    from liquid_memory_proxy.settings import ProxySettings
    from liquid_memory_proxy.testing import FakeLLM, ServerThread

    with ServerThread(FakeLLM().app()) as upstream:
        settings = ProxySettings(
            _env_file=None,
            synthesis_model="openai/fake-model",
            synthesis_api_base=upstream.url + "/v1",
            extractor=extractor,
            log_level="WARNING",
        )
        with ServerThread(create_app(settings)) as proxy:
            urls.put((upstream.url, proxy.url))
            stop.wait()


def _concurrent(proxy_url: str, messages: list[dict[str, str]], n: int) -> dict[str, Any]:
    """`n` requests at once from an async client: errors, wall time, latency p50/p95."""
    import asyncio

    async def go() -> tuple[list[float], int, float]:
        limits = httpx.Limits(max_connections=n)
        async with httpx.AsyncClient(timeout=300, limits=limits) as client:

            async def one() -> float:
                t = time.perf_counter()
                r = await client.post(proxy_url + "/v1/chat/completions", json={"model": "m", "messages": messages})
                r.raise_for_status()
                return (time.perf_counter() - t) * 1000

            t0 = time.perf_counter()
            out = await asyncio.gather(*(one() for _ in range(n)), return_exceptions=True)
            wall = (time.perf_counter() - t0) * 1000
        ok = [x for x in out if isinstance(x, float)]
        return ok, len(out) - len(ok), wall

    latencies, errors, wall = asyncio.run(go())
    return {
        "requests": n,
        "errors": errors,
        "wall_ms": round(wall, 1),
        "latency_ms_p50": round(statistics.median(latencies), 1) if latencies else None,
        "latency_ms_p95": round(_pct(latencies, 0.95), 1) if latencies else None,
    }


def measure(requests: int, doc_tokens: int, extractor: str, concurrency: int = 50) -> dict[str, Any]:
    """Servers in a child process (so the client does not share their GIL), client here."""
    ctx = multiprocessing.get_context("spawn")
    urls, stop = ctx.Queue(), ctx.Event()
    child = ctx.Process(target=_serve, args=(extractor, urls, stop), daemon=True)
    child.start()
    results: dict[str, Any] = {"requests": requests, "doc_tokens": doc_tokens, "extractor": extractor}
    try:
        upstream_url, proxy_url = urls.get(timeout=600)
        transport = httpx.HTTPTransport(socket_options=[(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)])
        with httpx.Client(timeout=120, transport=transport) as http:
            document = synthetic_document(doc_tokens)
            scenarios = {
                "passthrough": [{"role": "user", "content": "What is the vault access code?"}],
                "document": [
                    {"role": "user", "content": document},
                    {"role": "user", "content": "What is the vault access code?"},
                ],
            }
            direct = []
            for _ in range(min(requests, 50)):
                t = time.perf_counter()
                body = {"model": "x", "messages": scenarios["passthrough"]}
                http.post(upstream_url + "/v1/chat/completions", json=body)
                direct.append((time.perf_counter() - t) * 1000)
            results["direct_upstream_ms_p50"] = round(statistics.median(direct), 3)
            for name, messages in scenarios.items():
                rows = []
                for i in range(requests + 5):
                    t = time.perf_counter()
                    r = http.post(proxy_url + "/v1/chat/completions", json={"model": "m", "messages": messages})
                    client_ms = (time.perf_counter() - t) * 1000
                    r.raise_for_status()
                    timings = r.json()["liquid_memory"]["timings_ms"]
                    server_ms = float(r.headers["server-timing"].split("dur=")[1])
                    if i < 5:
                        continue  # warm-up
                    rows.append(
                        {
                            "client_ms": client_ms,
                            "extraction_ms": timings["extraction"],
                            "synthesis_ms": timings["synthesis"],
                            "overhead_ms": client_ms - timings["extraction"] - timings["synthesis"],
                            "server_overhead_ms": server_ms - timings["extraction"] - timings["synthesis"],
                            "handler_ms": timings["proxy_overhead"],
                        }
                    )
                results[name] = _summary(rows)
            results["concurrent"] = {
                name: _concurrent(proxy_url, messages, concurrency) for name, messages in scenarios.items()
            }
    finally:
        stop.set()
        child.join(timeout=30)
    return results


def print_table(results: dict[str, Any]) -> None:
    cols = ("client_ms", "extraction_ms", "synthesis_ms", "overhead_ms", "server_overhead_ms", "handler_ms")
    print(
        f"proxy overhead, {results['requests']} sequential requests, extractor={results['extractor']}, "
        f"document ≈{results['doc_tokens']} tokens; direct upstream p50 "
        f"{results['direct_upstream_ms_p50']} ms"
    )
    print(f"{'scenario':12}" + "".join(f"{c + ' p50/p95':>30}" for c in cols))
    for name in ("passthrough", "document"):
        row = results[name]
        print(f"{name:12}" + "".join(f"{row[c + '_p50']:>18.2f}/{row[c + '_p95']:<11.2f}" for c in cols))
    for name, row in results.get("concurrent", {}).items():
        print(
            f"{row['requests']} concurrent {name}: errors {row['errors']}, wall {row['wall_ms']} ms, "
            f"latency p50 {row['latency_ms_p50']} / p95 {row['latency_ms_p95']} ms"
        )


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``python -m benchmarks proxy-overhead``."""
    parser.add_argument("--requests", type=int, default=200, help="measured requests per scenario")
    parser.add_argument("--doc-tokens", type=int, default=8000, help="approximate document size")
    parser.add_argument("--extractor", default="builtin", help="extractor backend (EXTRACTOR)")
    parser.add_argument("--concurrency", type=int, default=50, help="requests sent at once (second phase)")
    parser.add_argument("--json", type=Path, default=Path("bench_results/proxy_overhead.json"))


def run(args: argparse.Namespace) -> int:
    """Measure, print the table, write ``--json``."""
    results = measure(args.requests, args.doc_tokens, args.extractor, args.concurrency)
    print_table(results)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(results, indent=2))
    cols = ("client_ms", "overhead_ms", "server_overhead_ms", "handler_ms")
    bars = {
        name: {c.removesuffix("_ms"): results[name][c + "_p50"] for c in cols} for name in ("passthrough", "document")
    }
    png = write_bar_png(args.json.with_suffix(".png"), bars, "ms (median)", "time in the proxy, excluding extraction")
    print(f"wrote {args.json} and {png}")
    return 0
