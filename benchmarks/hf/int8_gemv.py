"""The int8 weight-only matmul of serving (``Int8Linear``) on SmolLM2-135M's shapes: our C++ op against torch's.

``python -m benchmarks hf-int8-gemv`` (committed results: ``benchmarks/results/smollm2/serving``). For each weight
shape of the model (N × K: q/o 576×576, k/v 192×576, gate/up 1536×576, down 576×1536, the LM head 49152×576) and
each row count (``--rows``; 1 = batch-1 decode), the CPU time per call of the measuring thread (wall-clock in the
JSON) and the weight bytes read per CPU second of:

- ``ours``: ``int8_linear`` (``csrc/int8_linear.cpp``), fp32 x and y, AVX-512 where the CPU has it;
- ``ours-portable``: the same op forced onto its portable (8-lane) path;
- ``torch-int8``: ``torch._weight_int8pack_mm`` on bf16 x (what ``Int8Linear`` ran before, without its two
  dtype conversions);
- ``torch-fp32``: ``F.linear`` on the fp32 weight (4× the bytes: the unquantised model's matmul).

Two regimes: ``cold`` cycles through enough distinct copies of the weight (``--cold-mb`` in total) that every call
reads it from memory, as a decode step does (143 MB of int8 weights per token, far more than the caches);
``hot`` repeats one weight (a layer-sized weight stays in L2). The floor beside them: the single-thread read
bandwidth of a large buffer. One thread by default (``--threads``); the JSON records the CPU flags and the load.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from pathlib import Path
from typing import Any

SHAPES = {"k/v 192x576": (192, 576), "q/o 576x576": (576, 576), "gate/up 1536x576": (1536, 576),
          "down 576x1536": (576, 1536), "head 49152x576": (49152, 576)}  # fmt: skip
ENGINES = ("ours", "ours-portable", "torch-int8", "torch-fp32")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--rows", default="1,16", help="activation rows per call (1: batch-1 decode)")
    p.add_argument("--cold-mb", type=int, default=96, help="int8 megabytes of distinct weight copies per shape")
    p.add_argument("--calls", type=int, default=200, help="timed calls per sample (at most, the head: fewer)")
    p.add_argument("--samples", type=int, default=5, help="samples per figure (median)")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--machine", default="", help="what else ran on the machine (recorded in the JSON)")
    p.add_argument("--name", default="int8_gemv", help="file stem of the JSON / PNG / table")
    p.add_argument("--out-dir", default="bench_results")


def _engines() -> dict[str, Any]:
    """``name -> (prepare(q, scale) -> weight operand, call(x, operand) -> y, x dtype)``."""
    import torch

    ops = torch.ops.liquid_memory
    return {
        "ours": (lambda q, s: (q, s), lambda x, w: ops.int8_linear(x, w[0], w[1], None, False), torch.float32),
        "ours-portable": (lambda q, s: (q, s), lambda x, w: ops.int8_linear(x, w[0], w[1], None, True), torch.float32),
        "torch-int8": (lambda q, s: (q, s), lambda x, w: torch._weight_int8pack_mm(x, w[0], w[1]), torch.bfloat16),
        "torch-fp32": (lambda q, s: q.float() * s.float()[:, None], torch.nn.functional.linear, torch.float32),
    }  # fmt: skip


def _per_call_us(call, x, operands, calls: int, samples: int) -> tuple[float, float]:
    """Median over ``samples`` of (CPU µs, wall µs) per call: on a shared machine the CPU time of this thread is the
    figure to compare (wall-clock includes time the core ran other processes)."""
    for w in operands[: min(len(operands), 8)]:
        call(x, w)
    cpu, wall = [], []
    for _ in range(samples):
        c0, t0 = time.thread_time(), time.perf_counter()
        for i in range(calls):
            call(x, operands[i % len(operands)])
        cpu.append((time.thread_time() - c0) / calls * 1e6)
        wall.append((time.perf_counter() - t0) / calls * 1e6)
    return statistics.median(cpu), statistics.median(wall)


def measure(n: int, k: int, rows: int, args: argparse.Namespace) -> list[dict[str, Any]]:
    import torch

    from liquid_memory.hf.weights import quantize_int8

    g = torch.Generator().manual_seed(n + k)
    copies = max(1, (args.cold_mb << 20) // (n * k))
    base_q, base_s = quantize_int8(torch.randn(n, k, generator=g) * 0.05)
    out = []
    for engine, (prepare, call, dtype) in _engines().items():
        x = torch.randn(rows, k, generator=g).to(dtype)
        scale = 4 if engine == "torch-fp32" else 1  # bytes per weight
        cold = [prepare(base_q.roll(i, 0), base_s.roll(i, 0)) for i in range(max(1, copies // scale))]
        calls = max(len(cold), min(args.calls, max(4, (256 << 20) // (n * k * scale))))
        for regime, operands in (("cold", cold), ("hot", cold[:1])):
            us, wall = _per_call_us(call, x, operands, calls, args.samples)
            out.append({"shape": f"{n}x{k}", "rows": rows, "engine": engine, "regime": regime, "us": us,
                        "wall_us": wall, "weight_gbs": n * k * scale / us / 1e3})  # fmt: skip
        del cold
    return out


def run(args: argparse.Namespace) -> int:
    os.environ.setdefault("OMP_NUM_THREADS", str(args.threads))
    import torch

    import liquid_memory.ops.cpp  # noqa: F401  (registers torch.ops.liquid_memory.*)
    from benchmarks.hf.serve import machine_facts
    from benchmarks.output import format_table, write_bar_png

    facts = machine_facts(args)
    results: list[dict[str, Any]] = []
    with torch.inference_mode():
        for rows in (int(r) for r in args.rows.split(",")):
            for label, (n, k) in SHAPES.items():
                results += measure(n, k, rows, args)
                print(f"{label} rows={rows} done", flush=True)
    facts["load_average_at_end"] = os.getloadavg()
    table = format_table(
        [
            {**r, "us": round(r["us"], 1), "wall_us": round(r["wall_us"], 1), "weight_gbs": round(r["weight_gbs"], 1)}
            for r in results
        ],
        ["shape", "rows", "regime", "engine", "us", "wall_us", "weight_gbs"],
    )
    table += f"\n\nfloor: single-thread read bandwidth {facts['read_bandwidth_gbs_1_thread']:.1f} GB/s"
    print(table)
    out_dir = Path(args.out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    payload = {"benchmark": "hf-int8-gemv", "command": getattr(args, "command_line", ""), **facts,
               "shapes": SHAPES, "results": results}  # fmt: skip
    (out_dir / f"{args.name}.json").write_text(json.dumps(payload, indent=1), encoding="utf-8")
    (out_dir / f"{args.name}.txt").write_text(table + "\n", encoding="utf-8")
    groups = {f"{r['shape']}": {} for r in results if r["rows"] == 1}
    for r in results:
        if r["rows"] == 1 and r["regime"] == "cold":
            groups[r["shape"]][r["engine"]] = r["weight_gbs"]
    write_bar_png(out_dir / f"{args.name}.png", groups, "weight GB/s (1 row, cold)",
                  f"int8 GEMV, 1 thread; floor {facts['read_bandwidth_gbs_1_thread']:.0f} GB/s")  # fmt: skip
    return 0
