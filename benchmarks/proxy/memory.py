"""``python -m benchmarks proxy-memory``: the memory proof of the local reader (SmolLM2) on CPU.

For documents of growing length (essays, 4K → 32K tokens) it measures time and peak extra memory of:
- ``original_document``: the original SmolLM2 reading the whole document (prefill in 1024-token chunks
  into its KV cache, which grows with the document);
- ``original_factpack``: the original reading only the proxy's fact pack for a question (keyword
  extractor, the default budget) — what the proxy forwards instead of the document;
- ``linearized_document``: the linearized SmolLM2 (``--linearized DIR``, ``liquid-memory linearize``)
  reading the whole document through its constant-size state (same 1024-token chunks).
Each measurement runs in a fresh process; peak extra memory = the highest resident set size sampled every
5 ms during the measurement minus the size just before it. A measurement whose predicted time (from the
previous length: linear for the linearized reader, quadratic for the original) exceeds ``--budget-s`` is
skipped and reported as such.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from benchmarks.output import format_table, write_bar_png

QUESTION = "What does the author say about how startups should choose what to work on?"
CHUNK = 1024


def _rss_bytes() -> int:
    with open("/proc/self/statm", encoding="ascii") as fh:
        return int(fh.read().split()[1]) * 4096


def _document(length: int, tokenizer: Any) -> str:
    from liquid_memory.data.essays import joined, load_essays

    ids = tokenizer(joined(load_essays()), add_special_tokens=False)["input_ids"][:length]
    return tokenizer.decode(ids)


def _fact_pack(document: str) -> str:
    from liquid_memory_proxy.extractors.keyword import KeywordExtractor
    from liquid_memory_proxy.pipeline.compress import compress
    from liquid_memory_proxy.pipeline.types import CompressionConfig

    config = CompressionConfig(max_document_tokens=10**7)
    return asyncio.run(compress(document, QUESTION, config, KeywordExtractor())).fact_pack


def child(kind: str, length: int, linearized: str | None, threads: int) -> dict[str, Any]:
    """One measurement in this process (called through ``--child``)."""
    import torch

    torch.set_num_threads(threads)
    if kind == "linearized_document":
        from liquid_memory.hf.io import from_pretrained

        model, tok = from_pretrained(linearized)
    else:
        from liquid_memory.hf.smollm import load_smollm2

        model, tok = load_smollm2()
    text = _document(length, tok)
    if kind == "original_factpack":
        text = _fact_pack(text)
    ids = tok(text, return_tensors="pt", add_special_tokens=False)["input_ids"]
    peak, stop = [0], threading.Event()

    def sample() -> None:
        while not stop.is_set():
            peak[0] = max(peak[0], _rss_bytes())
            time.sleep(0.005)

    with torch.no_grad():
        model(ids[:, :16], use_cache=False)  # warm-up
        before = _rss_bytes()
        watcher = threading.Thread(target=sample, daemon=True)
        watcher.start()
        t0 = time.perf_counter()
        cache = None
        for i in range(0, ids.shape[1], CHUNK):
            cache = model(ids[:, i : i + CHUNK], past_key_values=cache, use_cache=True).past_key_values
        seconds = time.perf_counter() - t0
        stop.set()
        watcher.join()
    return {"tokens_read": int(ids.shape[1]), "seconds": seconds, "peak_extra_mb": (peak[0] - before) / 2**20}


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The options of ``python -m benchmarks proxy-memory``."""
    p.add_argument("--linearized", help="DIR of a linearized SmolLM2 (liquid-memory linearize)")
    p.add_argument("--lengths", default="4096,8192,16384,32768")
    p.add_argument("--budget-s", type=float, default=600.0, help="skip a measurement predicted to take longer")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out", default="benchmarks/results/proxy/reader_memory.json")
    p.add_argument("--child", nargs=2, metavar=("KIND", "LENGTH"), help=argparse.SUPPRESS)


def run(args: argparse.Namespace) -> int:
    """Measure every kind at every length, each in a fresh process (``--child``), and write ``--out``."""
    if args.child:
        print(json.dumps(child(args.child[0], int(args.child[1]), args.linearized, args.threads)))
        return 0
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    machine = f"{platform.platform()}, {os.cpu_count()} CPUs, load average at start {load}"
    kinds = ["original_factpack", "original_document"] + (["linearized_document"] if args.linearized else [])
    rows: dict[str, dict[str, Any]] = {k: {} for k in kinds}
    last: dict[str, tuple[int, float]] = {}
    for length in [int(x) for x in args.lengths.split(",")]:
        for kind in kinds:
            if kind in last:
                prev_len, prev_s = last[kind]
                power = 2 if kind == "original_document" else 1
                predicted = prev_s * (length / prev_len) ** power
                if predicted > args.budget_s:
                    rows[kind][str(length)] = {"skipped": f"predicted {predicted:.0f} s > budget {args.budget_s:.0f} s"}
                    continue
            cmd = [sys.executable, "-m", "benchmarks.proxy.memory", "--child", kind, str(length)]
            cmd += ["--threads", str(args.threads)] + (["--linearized", args.linearized] if args.linearized else [])
            proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
            if proc.returncode != 0:
                rows[kind][str(length)] = {"error": proc.stderr.strip().splitlines()[-1][:300]}
                continue
            rows[kind][str(length)] = json.loads(proc.stdout.strip().splitlines()[-1])
            last[kind] = (length, rows[kind][str(length)]["seconds"])
            print(kind, length, rows[kind][str(length)], flush=True)
    result = {"question": QUESTION, "chunk_tokens": CHUNK, "threads": args.threads, "rows": rows,
              "linearized": args.linearized, "machine": machine}  # fmt: skip
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=1) + "\n", encoding="utf-8")
    lengths = sorted({int(n) for kind_rows in rows.values() for n in kind_rows})
    table = [{"tokens": n, **{k: rows[k].get(str(n), {}).get("peak_extra_mb") for k in kinds}} for n in lengths]
    print(format_table(table))
    bars = {
        str(n): {k: v for k, v in row.items() if k != "tokens" and v is not None}
        for n, row in zip(lengths, table, strict=True)
    }
    png = write_bar_png(Path(args.out).with_suffix(".png"), bars, "peak extra MB", "local reader memory by length")
    print(f"wrote {args.out} and {png}")
    return 0


if __name__ == "__main__":  # one measurement per process (--child): peak memory starts from a clean slate
    parser = argparse.ArgumentParser(prog="python -m benchmarks.proxy.memory")
    add_arguments(parser)
    sys.exit(run(parser.parse_args()))
