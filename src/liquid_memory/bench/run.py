"""``LiquidMemory.benchmark()`` and ``liquid-memory bench``: the layer table, JSON and plot in one call."""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from pathlib import Path

import torch

from liquid_memory.bench.layer import LayerBenchConfig, LayerBenchmark, rows_to_dicts
from liquid_memory.bench.report import format_table, format_targets, target_checks, write_json, write_plot
from liquid_memory.extras import module_of_extra
from liquid_memory.nn.short_conv import DEFAULT_SHORT_CONV


def run_benchmark(
    embed_dim: int = 1024,
    num_heads: int = 16,
    batch_size: int = 1,
    seq_lengths: Sequence[int] = (1024, 2048, 4096, 8192, 16384, 32768, 65536, 131072),
    dtype: torch.dtype | str = torch.float32,
    device: str = "cpu",
    *,
    out_dir: str | Path | None = "bench_results",
    time_budget_s: float = 90.0,
    memory_budget_gb: float = 12.0,
    backward: bool = True,
    decode: bool = True,
    backend: str | None = None,
    progress: bool = True,
    echo: bool = True,
    decay_rank: int | None = None,
    extras: bool = False,
    short_conv: int = DEFAULT_SHORT_CONV,
    show_targets: bool = False,
) -> dict:
    """Measure LiquidMemory against its projection GEMMs, nn.MultiheadAttention and an SDPA layer; print, save
    JSON + PNG. ``extras``: also the same-run memory bandwidth and decode vs weight-read time (fp32 and bf16
    weights), the ``decay_rank`` sweep and whole-model ``torch.compile`` vs eager (fp32 runs). ``short_conv``: the
    layer's q/k/v short convolution (its floor stays the projection GEMMs, so the ratio includes the convolution).
    ``show_targets``: also print the project's performance targets against this run (the JSON always has them).

    Returns ``{"rows": [...], "targets": [...], "extras": {...}, "json": path, "plot": path}``.
    """
    if isinstance(dtype, str):
        dtype = getattr(torch, dtype)
    config = LayerBenchConfig(
        embed_dim=embed_dim, num_heads=num_heads, batch_size=batch_size, seq_lengths=tuple(seq_lengths),
        dtype=dtype, device=device, time_budget_s=time_budget_s, memory_budget_bytes=int(memory_budget_gb * 2**30),
        backward=backward, decode=decode, backend=backend, decay_rank=decay_rank, short_conv=short_conv,
    )  # fmt: skip
    bench = LayerBenchmark(config)
    rows = bench.run(progress=progress)
    measured = _extras(bench, config) if extras else {}
    checks = target_checks(rows, measured)
    result: dict = {"rows": rows_to_dicts(rows), "targets": checks, "extras": measured, "json": None, "plot": None}
    title = f"LiquidMemory vs softmax attention: E={embed_dim}, H={num_heads}, B={batch_size}, {str(dtype)[6:]}, causal"
    if echo:
        print(title)
        print(format_table(rows))
        if show_targets:
            print(format_targets(checks))
        if measured:
            print(json.dumps(measured, indent=1, default=str))
    if out_dir is not None:
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        stem = f"layer_E{embed_dim}_H{num_heads}_B{batch_size}_{str(dtype)[6:]}_{time.strftime('%Y%m%d-%H%M%S')}"
        result["json"], result["plot"] = out / f"{stem}.json", out / f"{stem}.png"
        write_json(result["json"], config, rows, checks, measured)
        try:
            write_plot(result["plot"], rows, title)
        except ModuleNotFoundError as err:  # a base install: the table and JSON, no plot
            if module_of_extra(err, "bench") is None:
                raise
            result["plot"] = None
        if echo and result["plot"]:
            print(f"wrote {result['json']} and {result['plot']}")
        elif echo:
            print(f"wrote {result['json']}; no PNG (matplotlib is not installed: pip install 'liquid-memory[bench]')")
    return result


def _extras(bench: LayerBenchmark, config: LayerBenchConfig) -> dict:
    """The same-run extras (see ``liquid_memory.bench.extras``); rank sweep and compile on fp32 runs only."""
    from liquid_memory.bench import extras

    bandwidth = extras.read_bandwidth_gbs()
    decode = extras.decode_vs_bandwidth(bench.lm, bandwidth)
    out: dict = {
        "decode": decode,
        "decode_vs_weight_read": decode["fp32" if config.dtype == torch.float32 else "bf16"]["ratio"],
    }
    if config.dtype == torch.float32:
        sweep_len = max([n for n in config.seq_lengths if n <= 8192] or [min(config.seq_lengths)])
        out["decay_rank_sweep"] = extras.rank_sweep(config.embed_dim, config.num_heads, sweep_len)
        out["compile"] = extras.compile_vs_eager(config.embed_dim, config.num_heads, min(4096, sweep_len))
    return out
