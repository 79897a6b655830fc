"""Reports for the layer benchmark: the printed table, the JSON file, the PNG plot, the target check."""

from __future__ import annotations

import json
import platform
from pathlib import Path

import torch

from liquid_memory.bench.layer import LayerBenchConfig, Row, rows_to_dicts, speedup

COLUMNS = [
    ("seq_len", None),
    ("LM mem", "lm_mem_mb"),
    ("MHA mem", "mha_mem_mb"),
    ("MHA(w) mem", "mha_w_mem_mb"),
    ("SDPA mem", "sdpa_mem_mb"),
    ("floor ms", "floor_fwd_ms"),
    ("LM ms", "lm_fwd_ms"),
    ("LM/floor", "lm_floor_fwd_ms"),
    ("MHA ms", "mha_fwd_ms"),
    ("SDPA ms", "sdpa_fwd_ms"),
    ("vs MHA", "speedup_mha"),
    ("vs SDPA", "speedup_sdpa"),
    ("floor f+b", "floor_fwdbwd_ms"),
    ("LM f+b ms", "lm_fwdbwd_ms"),
    ("f+b LM/floor", "lm_floor_fwdbwd_ms"),
    ("SDPA f+b ms", "sdpa_fwdbwd_ms"),
    ("MHA f+b ms", "mha_fwdbwd_ms"),
    ("f+b vs SDPA", "speedup_fwdbwd"),
    ("LM dec ms/tok", "lm_decode_ms"),
    ("SDPA dec ms/tok", "sdpa_decode_ms"),
]
COLUMN_NOTES = (
    "floor: the layer's own projection GEMMs alone (q/k/v, decay, out_proj), timed in alternation with the "
    "layer; LM/floor is the median of paired ratios. MHA: causal bool mask, need_weights=False — on torch "
    "2.13 that takes the fused SDPA path, so MHA ≈ SDPA; MHA(w) mem: its default need_weights=True. SDPA "
    "decode: preallocated KV cache written in place."
)


def _fmt(row: Row, key: str | None) -> str:
    if key is None:
        return str(row.seq_len)
    if key.startswith("lm_floor"):
        cell = row.cells.get(key)
        return "-" if cell is None else (cell.status if cell.value is None else f"{cell.value:.2f}x")
    if key.startswith("speedup"):
        num, den = {
            "speedup_mha": ("mha_fwd_ms", "lm_fwd_ms"),
            "speedup_sdpa": ("sdpa_fwd_ms", "lm_fwd_ms"),
            "speedup_fwdbwd": ("sdpa_fwdbwd_ms", "lm_fwdbwd_ms"),
        }[key]
        ratio = speedup(row, num, den)
        return "-" if ratio is None else f"{ratio:.1f}x"
    cell = row.cells.get(key)
    if cell is None:
        return "-"
    if cell.value is None:
        return cell.status
    if key.endswith("_mb"):
        return f"{cell.value:.0f} MB" if cell.value < 10240 else f"{cell.value / 1024:.1f} GB"
    return f"{cell.value:.3f}" if cell.value < 1 else f"{cell.value:.1f}"


def format_table(rows: list[Row]) -> str:
    """A fixed-width text table (one line per sequence length)."""
    cells = [[name for name, _ in COLUMNS]] + [[_fmt(r, key) for _, key in COLUMNS] for r in rows]
    widths = [max(len(line[i]) for line in cells) for i in range(len(COLUMNS))]
    lines = ["  ".join(text.rjust(w) for text, w in zip(line, widths, strict=True)) for line in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def target_checks(rows: list[Row], extras: dict | None = None) -> list[dict]:
    """The layer's performance targets, each with the measured figure and whether it is met (None = not measured)."""
    by_len = {r.seq_len: r for r in rows}

    def ratio(length: int, num: str, den: str) -> float | None:
        return speedup(by_len[length], num, den) if length in by_len else None

    def cell(length: int, key: str):
        return by_len[length].cells.get(key) if length in by_len else None

    def value(length: int, key: str) -> float | None:
        found = cell(length, key)
        return None if found is None else found.value

    out = [
        {"target": name, "measured": measured, "met": None if measured is None else measured <= goal}
        for name, measured, goal in (
            ("forward / its projection GEMMs at 8192 <= 1.10x", value(8192, "lm_floor_fwd_ms"), 1.10),
            ("forward / its projection GEMMs at 32768 <= 1.10x", value(32768, "lm_floor_fwd_ms"), 1.10),
            ("forward+backward / its GEMMs at 8192 <= 1.25x", value(8192, "lm_floor_fwdbwd_ms"), 1.25),
            ("decode step <= 1.2x the weight-read time", (extras or {}).get("decode_vs_weight_read"), 1.2),
        )
    ]
    checks = [
        ("forward vs SDPA at 8192 >= 2.5x", ratio(8192, "sdpa_fwd_ms", "lm_fwd_ms"), 2.5),
        ("forward vs SDPA at 32768 >= 8x", ratio(32768, "sdpa_fwd_ms", "lm_fwd_ms"), 8.0),
        ("forward+backward vs SDPA at 8192 >= 2.5x", ratio(8192, "sdpa_fwdbwd_ms", "lm_fwdbwd_ms"), 2.5),
    ]
    out += [
        {"target": name, "measured": measured, "met": None if measured is None else measured >= goal}
        for name, measured, goal in checks
    ]
    mha32, lm32 = cell(32768, "mha_fwd_ms"), cell(32768, "lm_fwd_ms")
    out.append({
        "target": "runs at 32768 where MHA cannot allocate",
        "measured": None if lm32 is None else f"LM {lm32.status}, MHA {mha32.status if mha32 else '-'}",
        "met": None if lm32 is None or mha32 is None else lm32.value is not None and mha32.value is None,
    })  # fmt: skip
    mem128 = cell(131072, "lm_mem_mb")
    out.append({
        "target": "131072 completes with peak extra memory < 4 GB",
        "measured": None if mem128 is None else mem128.value,
        "met": None if mem128 is None or mem128.value is None else mem128.value < 4096,
    })  # fmt: skip
    dec_short, dec_long = cell(1024, "lm_decode_ms"), cell(131072, "lm_decode_ms")
    decode_ratio = None
    if dec_short and dec_long and dec_short.value and dec_long.value:
        decode_ratio = dec_long.value / dec_short.value
    out.append({
        "target": "step() at 128K context <= 1.1x its time at 1K",
        "measured": decode_ratio,
        "met": None if decode_ratio is None else decode_ratio <= 1.1,
    })  # fmt: skip
    return out


def format_targets(checks: list[dict]) -> str:
    lines = ["Targets:"]
    for check in checks:
        value = check["measured"]
        shown = "not measured" if value is None else (f"{value:.2f}" if isinstance(value, float) else str(value))
        verdict = {True: "MET", False: "MISSED", None: "n/a"}[check["met"]]
        lines.append(f"  [{verdict:>6}] {check['target']}: {shown}")
    return "\n".join(lines)


def environment(config: LayerBenchConfig) -> dict:
    from liquid_memory.ops.dispatch import resolve_backend

    return {
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "machine": platform.machine(),
        "processor": platform.processor(),
        "liquid_scan_backend": resolve_backend(config.backend, device_type=torch.device(config.device).type),
    }


def write_json(
    path: Path, config: LayerBenchConfig, rows: list[Row], checks: list[dict], extras: dict | None = None
) -> None:
    payload = {
        "notes": COLUMN_NOTES,
        "extras": extras or {},
        "config": {**{k: v for k, v in vars(config).items() if k != "dtype"}, "dtype": str(config.dtype),
                   "seq_lengths": list(config.seq_lengths)},
        "environment": environment(config),
        "rows": rows_to_dicts(rows),
        "targets": checks,
    }  # fmt: skip
    path.write_text(json.dumps(payload, indent=2), encoding="utf-8")


def write_plot(path: Path, rows: list[Row], title: str) -> None:
    """Time and memory vs sequence length, log-log, one line per layer (missing points left out)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax_time, ax_mem) = plt.subplots(1, 2, figsize=(12, 4.5))
    series = [
        ("LiquidMemory", "lm", "tab:blue"),
        ("nn.MultiheadAttention", "mha", "tab:red"),
        ("SDPA layer", "sdpa", "tab:green"),
    ]
    for label, peer, color in series:
        lines = (
            (ax_time, f"{peer}_fwd_ms", label + " forward", "-o"),
            (ax_time, f"{peer}_fwdbwd_ms", label + " fwd+bwd", "--x"),
            (ax_mem, f"{peer}_mem_mb", label, "-o"),
        )
        for ax, key, name, style in lines:
            points = [(r.seq_len, r.cells[key].value) for r in rows if key in r.cells and r.cells[key].value]
            if points:
                ax.plot(*zip(*points, strict=True), style, color=color, label=name)
    for ax, ylabel in ((ax_time, "time (ms)"), (ax_mem, "peak extra memory, forward (MB)")):
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_xlabel("sequence length (tokens)")
        ax.set_ylabel(ylabel)
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
