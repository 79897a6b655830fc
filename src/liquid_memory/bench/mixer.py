"""Mixer-only benchmark: the ``liquid_scan`` backends against a same-run SGEMM FLOP rate.

Backends: ``naive`` (sequential oracle; skipped above ``naive_max_len``), ``chunked`` (pure PyTorch,
eager), ``compile`` (``torch.compile`` of the chunked reference), ``aoti`` (an AOTInductor package of
the chunked reference, exported and compiled inside this run, forward only) and ``cpp`` (the C++
kernels). Shapes are those of a layer: ``d = embed_dim // num_heads``.

FLOP counts (both reported; fp32 multiply-adds count 2):

* **useful** ``4·B·H·T·d²`` — the recurrence itself: the state update ``k vᵀ`` and the read-out
  ``Sᵀq`` per token (the decay scaling is not counted). Independent of the algorithm.
* **executed** ``B·H·T·(4d² + 2·C·d)`` with ``C = 64`` — what the chunked algorithm (ours and the
  reference) actually multiplies: ``Q̃S`` and ``K̃ᵀV`` per chunk plus the causal-half intra-chunk
  scores and their product with V. The SGEMM ratio (hardware efficiency) uses this count.

SGEMM: ``torch.mm`` of two fp32 ``n×n`` matrices (n = 2048) with the same thread count, timed in the
same run, before and after the scans (the better of the two is the reference rate).

Wall-clock ratios swing widely on a shared machine (other processes take the cores mid-call), so the
table also gives a CPU-time ratio: FLOPs per CPU-second (``time.process_time``, summed over threads) of
the scan against the same for SGEMM — the per-core efficiency, much less sensitive to contention.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

from liquid_memory.bench.timing import time_call
from liquid_memory.ops.chunked import chunked_liquid_scan
from liquid_memory.ops.naive import naive_liquid_scan

CHUNK = 64
ALL_BACKENDS = ("naive", "chunked", "compile", "aoti", "cpp")


def useful_flops(b: int, h: int, t: int, d: int) -> float:
    return 4.0 * b * h * t * d * d


def executed_flops(b: int, h: int, t: int, d: int, chunk: int = CHUNK) -> float:
    return float(b * h * t * (4 * d * d + 2 * chunk * d))


def sgemm_gflops(n: int = 2048, repeats: int = 5) -> float:
    """Best-of-``repeats`` fp32 matmul rate (GFLOP/s) at the current torch thread count."""
    a, b = torch.randn(n, n), torch.randn(n, n)
    torch.mm(a, b)
    best = min(_wall(lambda: torch.mm(a, b)) for _ in range(repeats))
    return 2.0 * n**3 / best / 1e9


def sgemm_cpu_gflops(n: int = 2048, repeats: int = 5) -> float:
    """Best-of-``repeats`` fp32 matmul GFLOP per CPU-second (process time, all threads)."""
    a, b = torch.randn(n, n), torch.randn(n, n)
    torch.mm(a, b)
    return 2.0 * n**3 / min(_cpu(lambda: torch.mm(a, b)) for _ in range(repeats)) / 1e9


def _cpu(fn) -> float:
    t0 = time.process_time()
    fn()
    return time.process_time() - t0


def _wall(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def _inputs(b: int, h: int, t: int, d: int, dtype: torch.dtype, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    q, k, v = (torch.randn(b, h, t, d, generator=g).to(dtype) for _ in range(3))
    log_a = -torch.rand(b, h, t, d, generator=g) * 0.1
    return q, k, v, log_a


class _ChunkedScan(torch.nn.Module):
    def forward(self, q, k, v, log_a):  # noqa: D102
        return chunked_liquid_scan(q, k, v, log_a, chunk_size=CHUNK, precision_safe=False)[0]


def build_aoti(b: int, h: int, d: int, dtype: torch.dtype) -> tuple[Any, dict[str, float]]:
    """Export + AOT-compile the chunked reference (T dynamic, a multiple of 64); returns (runner, timings)."""
    from torch.export import Dim

    chunks = Dim("chunks", min=1, max=1 << 16)
    dyn = tuple({2: CHUNK * chunks} for _ in range(4))
    t0 = time.perf_counter()
    ep = torch.export.export(_ChunkedScan(), _inputs(b, h, 2 * CHUNK, d, dtype), dynamic_shapes=dyn, strict=False)
    t1 = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        path = str(Path(tmp) / "chunked_scan.pt2")
        torch._inductor.aoti_compile_and_package(
            ep, package_path=path, inductor_configs={"aot_inductor.check_lowerbound": False}
        )
        runner = torch._inductor.aoti_load_package(path)
    t2 = time.perf_counter()
    return runner, {"export_s": round(t1 - t0, 2), "compile_s": round(t2 - t1, 2)}


def _scan_fn(name: str, state: dict[str, Any]):
    if name == "naive":
        return lambda q, k, v, la: naive_liquid_scan(q, k, v, la)[0]
    if name == "chunked":
        return lambda q, k, v, la: chunked_liquid_scan(q, k, v, la, precision_safe=False)[0]
    if name == "compile":
        if "compiled" not in state:
            state["compiled"] = torch.compile(chunked_liquid_scan, dynamic=False)
        fn = state["compiled"]
        return lambda q, k, v, la: fn(q, k, v, la, precision_safe=False)[0]
    if name == "aoti":
        runner = state["aoti"]
        return lambda q, k, v, la: runner(q, k, v, la)
    from liquid_memory.ops.cpp import cpp_liquid_scan

    return lambda q, k, v, la: cpp_liquid_scan(q, k, v, la, precision_safe=False)[0]


def _fwd_bwd(fn, xs):
    leaves = [x.detach().requires_grad_() for x in xs]
    out = fn(*leaves)
    torch.autograd.grad(out, leaves, torch.ones_like(out))


def _decode_us(b: int, h: int, d: int, dtype: torch.dtype) -> dict[str, float]:
    from liquid_memory.ops.cpp import cpp_liquid_step
    from liquid_memory.ops.reference_step import reference_liquid_step

    q, k, v, la = (x[:, :, 0] for x in _inputs(b, h, 1, d, dtype))
    out = {}
    for name, step in (("cpp", cpp_liquid_step), ("reference", reference_liquid_step)):
        state = torch.zeros(b, h, d, d)
        step(q, k, v, la, state)
        n = 200
        t0 = time.perf_counter()
        for _ in range(n):
            step(q, k, v, la, state)
        out[name] = (time.perf_counter() - t0) / n * 1e6
    return out


def run_mixer_benchmark(
    embed_dim: int = 1024,
    num_heads: int = 16,
    batch_size: int = 1,
    seq_lengths: tuple[int, ...] = (2048, 8192),
    dtype: torch.dtype = torch.float32,
    backends: tuple[str, ...] = ALL_BACKENDS,
    *,
    backward: bool = True,
    naive_max_len: int = 2048,
    threads: int | None = None,
    budget_s: float = 20.0,
    sgemm_n: int = 2048,
    json_path: str | Path | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """Time every backend at every length; returns (and optionally writes) a JSON-able dict.

    ``threads`` sets torch's intra-op thread count for the run (restored afterwards).
    """
    previous = torch.get_num_threads()
    if threads:
        torch.set_num_threads(threads)
    try:
        return _run(embed_dim, num_heads, batch_size, seq_lengths, dtype, backends, backward, naive_max_len,
                    budget_s, sgemm_n, json_path, progress)  # fmt: skip
    finally:
        torch.set_num_threads(previous)


def _run(embed_dim, num_heads, batch_size, seq_lengths, dtype, backends, backward, naive_max_len, budget_s,
         sgemm_n, json_path, progress) -> dict[str, Any]:  # fmt: skip
    from liquid_memory.ops.cpp import cpp_available

    d = embed_dim // num_heads
    b, h = batch_size, num_heads
    result: dict[str, Any] = {
        "config": {"embed_dim": embed_dim, "num_heads": num_heads, "head_dim": d, "batch_size": b,
                   "dtype": str(dtype).removeprefix("torch."), "threads": torch.get_num_threads(), "sgemm_n": sgemm_n,
                   "torch": torch.__version__, "cpu_capability": torch.backends.cpu.get_cpu_capability()},
        "flop_counts": {"useful": "4*B*H*T*d^2", "executed": f"B*H*T*(4*d^2 + 2*{CHUNK}*d)"},
        "rows": [],
    }  # fmt: skip
    sgemm_before, sgemm_cpu_before = sgemm_gflops(sgemm_n), sgemm_cpu_gflops(sgemm_n)
    state: dict[str, Any] = {}
    if "aoti" in backends:
        try:
            state["aoti"], result["aoti_build"] = build_aoti(b, h, d, dtype)
        except Exception as exc:  # noqa: BLE001 - reported in the table, never hidden
            result["aoti_build"] = {"error": f"{type(exc).__name__}: {exc}"[:300]}
    jobs = [(t, name) for t in seq_lengths for name in backends]
    bar = _progress(len(jobs), progress)
    for t, name in jobs:
        row: dict[str, Any] = {"seq_len": t, "backend": name}
        skip = _skip_reason(name, t, naive_max_len, state, cpp_available())
        if skip:
            row["status"] = skip
        else:
            try:
                _measure(row, name, state, _inputs(b, h, t, d, dtype, seed=t), backward, budget_s)
                row["status"] = "ok"
            except Exception as exc:  # noqa: BLE001 - a failing peer is reported in the table, not hidden
                row.pop("fwd_ms", None)
                row["status"] = f"failed ({type(exc).__name__}: {str(exc).splitlines()[0][:120]})"
        result["rows"].append(row)
        bar.update(1)
    bar.close()
    sgemm_after, sgemm_cpu_after = sgemm_gflops(sgemm_n), sgemm_cpu_gflops(sgemm_n)
    rate = max(sgemm_before, sgemm_after)
    cpu_rate = max(sgemm_cpu_before, sgemm_cpu_after)
    result["sgemm_gflops"] = {"before": round(sgemm_before, 1), "after": round(sgemm_after, 1), "used": round(rate, 1)}
    result["sgemm_gflops_per_cpu_s"] = round(cpu_rate, 1)
    _derive(result, b, h, d, rate, cpu_rate)
    if "cpp" in backends and cpp_available():
        result["decode_step_us"] = _decode_us(b, h, d, dtype)
    if json_path:
        Path(json_path).parent.mkdir(parents=True, exist_ok=True)
        Path(json_path).write_text(json.dumps(result, indent=2) + "\n")
    return result


def _measure(row: dict[str, Any], name: str, state: dict[str, Any], xs, backward: bool, budget_s: float) -> None:
    fn = _scan_fn(name, state)
    t0 = time.perf_counter()
    with torch.no_grad():
        fn(*xs)  # first call: compilation for `compile`, warm-up otherwise
    row["first_call_s"] = round(time.perf_counter() - t0, 3)
    with torch.no_grad():
        row["fwd_ms"] = time_call(lambda: fn(*xs), budget_s=budget_s) * 1e3
        if row["fwd_ms"] < 5000:
            row["fwd_cpu_ms"] = min(_cpu(lambda: fn(*xs)) for _ in range(3)) * 1e3
    if backward and name in ("chunked", "cpp"):
        row["fwd_bwd_ms"] = time_call(lambda: _fwd_bwd(fn, xs), budget_s=budget_s) * 1e3


def _skip_reason(name: str, t: int, naive_max_len: int, state: dict[str, Any], have_cpp: bool) -> str | None:
    if name == "naive" and t > naive_max_len:
        return "skipped (over budget)"
    if name == "aoti" and "aoti" not in state:
        return "skipped (AOTInductor build failed)"
    if name == "aoti" and t % CHUNK:
        return f"skipped (T not a multiple of {CHUNK})"
    if name == "cpp" and not have_cpp:
        return "skipped (C++ extension not built)"
    return None


def _derive(result: dict[str, Any], b: int, h: int, d: int, sgemm: float, sgemm_cpu: float) -> None:
    ref = {r["seq_len"]: r["fwd_ms"] for r in result["rows"] if r["backend"] == "chunked" and "fwd_ms" in r}
    for r in result["rows"]:
        if "fwd_ms" not in r:
            continue
        t, s = r["seq_len"], r["fwd_ms"] / 1e3
        r["useful_gflops"] = useful_flops(b, h, t, d) / s / 1e9
        r["executed_gflops"] = executed_flops(b, h, t, d) / s / 1e9
        r["pct_sgemm_executed"] = 100.0 * r["executed_gflops"] / sgemm
        r["pct_sgemm_useful"] = 100.0 * r["useful_gflops"] / sgemm
        if "fwd_cpu_ms" in r:
            r["pct_sgemm_executed_cpu"] = 100.0 * executed_flops(b, h, t, d) / (r["fwd_cpu_ms"] / 1e3) / 1e9 / sgemm_cpu
        if t in ref:
            r["speedup_vs_chunked"] = ref[t] / r["fwd_ms"]


def format_table(result: dict[str, Any]) -> str:
    head = (f"{'seq_len':>8} {'backend':>8} {'fwd ms':>10} {'fwd+bwd ms':>11} {'useful GF/s':>12} "
            f"{'exec GF/s':>10} {'%SGEMM exec':>12} {'%SGEMM useful':>14} {'%SGEMM exec CPU':>16} "
            f"{'vs chunked':>11}")  # fmt: skip
    lines = [head, "-" * len(head)]
    for r in result["rows"]:
        if r["status"] != "ok":
            lines.append(f"{r['seq_len']:>8} {r['backend']:>8} {r['status']}")
            continue
        fb = f"{r['fwd_bwd_ms']:.1f}" if "fwd_bwd_ms" in r else "-"
        sp = f"{r['speedup_vs_chunked']:.2f}x" if "speedup_vs_chunked" in r else "-"
        cpu = f"{r['pct_sgemm_executed_cpu']:.1f}%" if "pct_sgemm_executed_cpu" in r else "-"
        lines.append(f"{r['seq_len']:>8} {r['backend']:>8} {r['fwd_ms']:>10.1f} {fb:>11} {r['useful_gflops']:>12.1f} "
                     f"{r['executed_gflops']:>10.1f} {r['pct_sgemm_executed']:>11.1f}% "
                     f"{r['pct_sgemm_useful']:>13.1f}% {cpu:>16} {sp:>11}")  # fmt: skip
    s = result["sgemm_gflops"]
    n = result["config"]["sgemm_n"]
    lines.append(f"SGEMM (fp32 {n}^3, same run): {s['used']} GFLOP/s wall (before {s['before']}, after {s['after']}); "
                 f"{result['sgemm_gflops_per_cpu_s']} GFLOP per CPU-second")  # fmt: skip
    if "aoti_build" in result:
        lines.append(f"AOTInductor build of the chunked reference: {result['aoti_build']}")
    if "decode_step_us" in result:
        du = result["decode_step_us"]
        lines.append(f"decode step (one token, all heads): cpp {du['cpp']:.1f} us, reference {du['reference']:.1f} us")
    return "\n".join(lines)


def _progress(total: int, enabled: bool):
    from tqdm import tqdm

    return tqdm(total=total, desc="mixer benchmark", disable=not enabled, leave=False)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description="liquid_scan backends vs a same-run SGEMM FLOP rate")
    p.add_argument("--embed-dim", type=int, default=1024)
    p.add_argument("--num-heads", type=int, default=16)
    p.add_argument("--batch-size", type=int, default=1)
    p.add_argument("--seq-lengths", type=int, nargs="+", default=[2048, 8192])
    p.add_argument("--dtype", choices=["float32", "bfloat16"], default="float32")
    p.add_argument("--backends", nargs="+", choices=ALL_BACKENDS, default=list(ALL_BACKENDS))
    p.add_argument("--no-backward", action="store_true", help="skip the forward+backward timings")
    p.add_argument("--naive-max-len", type=int, default=2048)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--budget-s", type=float, default=20.0, help="time budget per measurement")
    p.add_argument("--json", default="bench_results/mixer.json")
    p.add_argument("--quiet", action="store_true")
    a = p.parse_args(argv)
    res = run_mixer_benchmark(
        a.embed_dim, a.num_heads, a.batch_size, tuple(a.seq_lengths), getattr(torch, a.dtype), tuple(a.backends),
        backward=not a.no_backward, naive_max_len=a.naive_max_len, threads=a.threads, budget_s=a.budget_s,
        json_path=a.json, progress=not a.quiet,
    )  # fmt: skip
    print(format_table(res))
    print(f"JSON: {a.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
