"""Serving speed of SmolLM2-135M on a CPU: the original (transformers), the linearized hybrid, and llama.cpp.

``python -m benchmarks hf-serve`` (committed results: ``benchmarks/results/smollm2/serving``): prefill tokens/s and
decode ms/token at each ``--contexts`` length, then aggregate decode tokens/s at each ``--batches`` size with
``--batch-context`` tokens per sequence, for every ``--engines`` entry — ``original``, ``hybrid`` (each optionally
``-bf16`` / ``-int8``: ``liquid_memory.hf.weights``) and ``llama.cpp`` (``llama-cpp-python`` on the same GGUF).
Every measurement runs in its own process (``serve_engines.py``) at ``--threads`` threads; engines are interleaved
(each context runs every engine before the next context, the engine order rotating), so a change in the load of a
shared machine hits them alike. Beside each figure: the bytes a decode step reads per sequence (weights + cache or
state) and the process's memory; in the JSON the CPU flags, the llama.cpp build's instruction sets, a measured
single-thread read bandwidth, wall-clock and CPU time of every figure, and llama.cpp's own timing lines (parsed, a
cross-check of ours). ``--parts ppl`` adds held-out perplexity per weight format.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from benchmarks.hf.llama_cpp_text import parse_perf, parse_system_info

ENGINES = ("original", "original-bf16", "original-int8", "hybrid", "hybrid-bf16", "hybrid-int8", "llama.cpp")
FLAGS = ("avx2", "fma", "avx512f", "avx512bw", "avx512_vnni", "avx512_bf16", "amx_tile", "amx_int8", "amx_bf16")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--engines", default="original,hybrid,hybrid-int8,llama.cpp", help=f"from {','.join(ENGINES)}")
    p.add_argument("--hybrid", help="DIR of a linearized hybrid (default: an untrained patch_model(window=64, "
                   "sinks=4) — the same operations, so the same speed; perplexity needs a DIR)")  # fmt: skip
    p.add_argument("--contexts", default="1024,2048,4096,8192")
    p.add_argument("--long-context", type=int, default=32768, help="one more context for --long-engines (0: none)")
    p.add_argument("--long-engines", default="hybrid,hybrid-int8", help="engines measured at --long-context too")
    p.add_argument("--batches", default="1,4,16")
    p.add_argument("--batch-context", type=int, default=4096)
    p.add_argument("--repeats", type=int, default=1, help="speed part: runs per engine and context (own process "
                   "each, engine order rotating); a row holds each figure's median, the JSON every run")  # fmt: skip
    p.add_argument("--steps", type=int, default=16, help="timed decode steps per run")
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--parts", default="speed,batch", help="subset of speed,batch,ppl")
    p.add_argument("--ppl-context", type=int, default=2048)
    p.add_argument("--ppl-max-tokens", type=int, default=8192)
    p.add_argument("--machine", default="", help="what else ran on the machine (recorded in the JSON)")
    p.add_argument("--name", default="serve_smollm2", help="file stem of the JSON / PNG / table")
    p.add_argument("--out-dir", default="bench_results")


def engine_spec(name: str, args: argparse.Namespace) -> dict[str, Any]:
    """``hybrid-int8`` → ``{"engine": "hybrid", "weights": "int8", ...}``."""
    if name not in ENGINES:
        raise SystemExit(f"unknown engine {name!r}: choose from {', '.join(ENGINES)}")
    engine, _, weights = name.partition("-")
    spec = {"engine": engine, "weights": weights or "fp32", "threads": args.threads, "seed": args.seed}
    if engine == "hybrid" and args.hybrid:
        spec["dir"] = args.hybrid
    return spec


def run_worker(spec: dict[str, Any]) -> dict[str, Any]:
    """Run one measurement in a fresh process; its result plus llama.cpp's parsed timing lines."""
    env = dict(os.environ, OMP_NUM_THREADS=str(spec["threads"]), MKL_NUM_THREADS=str(spec["threads"]))
    proc = subprocess.run(
        [sys.executable, "-m", "benchmarks.hf.serve_engines", json.dumps(spec)],
        capture_output=True, text=True, env=env, check=False,
    )  # fmt: skip
    lines = [line for line in proc.stdout.splitlines() if line.startswith("RESULT ")]
    if proc.returncode != 0 or not lines:
        tail = "\n".join(proc.stderr.splitlines()[-15:])
        raise SystemExit(f"worker failed for {spec}:\n{tail}")
    result = json.loads(lines[-1][len("RESULT ") :])
    if spec["engine"] == "llama.cpp":
        result["llama_cpp_perf"] = parse_perf(proc.stderr)
        result["llama_cpp_build"] = parse_system_info(result.pop("system_info", ""))
    return result


def bytes_per_token(row: dict[str, Any], batch: int = 1) -> float:
    """What one decode step reads per sequence: all weights (shared by the batch) / batch + one sequence's cache."""
    return row["weight_bytes"] / batch + row["cache_bytes"] / batch


def machine_facts(args: argparse.Namespace) -> dict[str, Any]:
    import platform

    import torch

    from liquid_memory.artifacts.cpu import cpu_flags
    from liquid_memory.bench.extras import read_bandwidth_gbs

    torch.set_num_threads(args.threads)
    flags = cpu_flags()
    return {
        "date": datetime.date.today().isoformat(),
        "cpu_flags": {f: f in flags for f in FLAGS},
        "cpu_count": os.cpu_count(),
        "processor": platform.processor() or platform.machine(),
        "torch": torch.__version__,
        "torch_cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "read_bandwidth_gbs_1_thread": read_bandwidth_gbs(),
        "threads": args.threads,
        "machine": args.machine,
        "load_average_at_start": os.getloadavg(),
    }


def run_speed(args: argparse.Namespace, names: list[str], out: dict[str, dict[str, Any]], save) -> None:
    """``out[engine][context]``, interleaved: every engine at one context before the next context; ``save()``
    after each measurement (a long run interrupted keeps what it measured)."""
    contexts = [int(c) for c in args.contexts.split(",")]
    plan = [(c, names) for c in contexts]
    if args.long_context:
        plan.append((args.long_context, [n for n in args.long_engines.split(",") if n in names]))
    out.update({n: {} for n in names})
    runs: dict[tuple[str, int], list[dict[str, Any]]] = {}
    for i, (context, engines) in enumerate(plan):
        for r in range(args.repeats):
            turn = (i + r) % len(engines)
            for name in engines[turn:] + engines[:turn]:  # rotate who runs first
                spec = {**engine_spec(name, args), "context": context, "batch": 1, "steps": args.steps,
                        "warmup": args.warmup}  # fmt: skip
                runs.setdefault((name, context), []).append(run_worker(spec))
                out[name][str(context)] = row = median_row(runs[(name, context)])
                row["bytes_per_token"] = bytes_per_token(row)
                last = runs[(name, context)][-1]
                print(f"{name:14s} {context:6d}: prefill {last['prefill_tokens_per_s']:7.1f} tok/s, decode "
                      f"{last['decode_ms_per_step']:7.1f} ms ({last['decode_cpu_ms_per_step']:.1f} CPU ms), "
                      f"{row['bytes_per_token'] / 1e6:.0f} MB/token", flush=True)  # fmt: skip
                save()


TIMED = ("prefill_tokens_per_s", "prefill_tokens_per_cpu_s", "decode_ms_per_step", "decode_cpu_ms_per_step",
         "decode_tokens_per_s")  # fmt: skip


def median_row(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """One row from repeated runs of an engine at a context: the median of each timed figure (``TIMED``), the rest
    from the first run; with more than one run, ``runs`` keeps every run's timed figures."""
    import statistics

    row = dict(runs[0])
    if len(runs) > 1:
        row.update({key: statistics.median(run[key] for run in runs) for key in TIMED})
        row["runs"] = [{key: run[key] for key in TIMED} for run in runs]
    return row


def run_batches(args: argparse.Namespace, names: list[str], out: dict[str, dict[str, Any]], save) -> None:
    """``out[engine][batch]`` at ``--batch-context`` tokens per sequence, interleaved like ``run_speed``."""
    out.update({n: {} for n in names})
    for i, batch in enumerate(int(b) for b in args.batches.split(",")):
        for name in names[i % len(names) :] + names[: i % len(names)]:
            spec = {**engine_spec(name, args), "context": args.batch_context, "batch": batch, "steps": args.steps,
                    "warmup": args.warmup}  # fmt: skip
            out[name][str(batch)] = row = run_worker(spec)
            row["bytes_per_token"] = bytes_per_token(row, batch)
            print(f"{name:14s} batch {batch:3d} x {args.batch_context}: {row['decode_tokens_per_s']:7.1f} tok/s, "
                  f"peak RSS {row['peak_rss_bytes'] / 2**20:.0f} MiB", flush=True)  # fmt: skip
            save()


def run_ppl(args: argparse.Namespace, names: list[str]) -> dict[str, Any]:
    out = {}
    for name in (n for n in names if n != "llama.cpp"):
        spec = {**engine_spec(name, args), "part": "ppl", "context": args.ppl_context,
                "max_tokens": args.ppl_max_tokens}  # fmt: skip
        out[name] = run_worker(spec)
        print(f"{name:14s} held-out ppl at {args.ppl_context}: {out[name]['ppl']:.3f}", flush=True)
    return out


def _ratio(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None else a / b


def targets(result: dict[str, Any]) -> dict[str, Any]:
    """The serving targets, each with its value (wall-clock and CPU time) and hit / miss."""
    speed, out = result.get("speed", {}), {}

    def get(engine: str, ctx: str, key: str) -> float | None:
        return speed.get(engine, {}).get(ctx, {}).get(key)

    def add(name: str, target: str, test, a: tuple[str, str], b: tuple[str, str], keys: tuple[str, str]) -> None:
        wall, cpu = _ratio(get(*a, keys[0]), get(*b, keys[0])), _ratio(get(*a, keys[1]), get(*b, keys[1]))
        if wall is not None:
            out[name] = {"wall": wall, "cpu": cpu, "target": target, "hit_wall": test(wall), "hit_cpu": test(cpu)}

    decode, prefill = (
        ("decode_ms_per_step", "decode_cpu_ms_per_step"),
        ("prefill_tokens_per_s", "prefill_tokens_per_cpu_s"),
    )
    add(
        "hybrid_over_original_decode_1024",
        "<= 1.05",
        lambda r: r <= 1.05,
        ("hybrid", "1024"),
        ("original", "1024"),
        decode,
    )
    add(
        "hybrid_over_original_prefill_1024",
        ">= 0.9",
        lambda r: r >= 0.9,
        ("hybrid", "1024"),
        ("original", "1024"),
        prefill,
    )
    for ctx, limit in (("1024", 1.5), ("4096", 1.0), ("8192", 1.0)):
        test = (lambda r, lim=limit: r <= lim) if limit > 1 else (lambda r: r < 1.0)
        add(f"hybrid_int8_over_llama_cpp_decode_{ctx}", f"{'<=' if limit > 1 else '<'} {limit}", test,
            ("hybrid-int8", ctx), ("llama.cpp", ctx), decode)  # fmt: skip
    ppl = result.get("ppl", {})
    if "hybrid" in ppl and "hybrid-int8" in ppl:
        r = ppl["hybrid-int8"]["ppl"] / ppl["hybrid"]["ppl"]
        out["hybrid_int8_over_fp32_ppl"] = {"value": r, "target": "<= 1.02", "hit": r <= 1.02}
    return out


def run(args: argparse.Namespace) -> int:
    names = args.engines.split(",")
    for name in names:
        engine_spec(name, args)  # unknown names fail before anything runs
    parts = set(args.parts.split(","))
    result: dict[str, Any] = {"command": " ".join(["python -m benchmarks hf-serve", *sys.argv[2:]]),
                              "facts": machine_facts(args), "engines": names}  # fmt: skip
    out = Path(args.out_dir)
    out.mkdir(parents=True, exist_ok=True)

    def save() -> None:
        result["facts"]["load_average_at_end"] = os.getloadavg()
        result["targets"] = targets(result)
        (out / f"{args.name}.json").write_text(json.dumps(result, indent=1) + "\n", encoding="utf-8")

    if "speed" in parts:
        run_speed(args, names, result.setdefault("speed", {}), save)
    if "batch" in parts:
        result["batch"] = {"context": args.batch_context, "engines": {}}
        run_batches(args, names, result["batch"]["engines"], save)
    if "ppl" in parts:
        result["ppl"] = run_ppl(args, names)
    save()
    report(result, out, args.name)
    return 0


def report(result: dict[str, Any], out: Path, name: str) -> None:
    """The table (printed and ``NAME.txt``) and the PNG of a result."""
    from benchmarks.hf.serve_report import format_rows, plot

    text = format_rows(result)
    (out / f"{name}.txt").write_text(text + "\n", encoding="utf-8")
    plot(result, out / f"{name}.png")
    print(text)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks hf-serve", description=__doc__)
    add_arguments(parser)
    return run(parser.parse_args(argv))
