"""The serving benchmark's table and PNG (``serve.py`` writes the JSON they are made from)."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def _mb(x: float) -> str:
    return f"{x / 1e6:.0f}"


def format_rows(result: dict[str, Any]) -> str:
    """Speed rows (engine × context), batch rows (engine × batch), perplexity rows and the targets, as text."""
    lines = ["engine          context  prefill tok/s (CPU)   decode ms/token (CPU)   read/token MB   peak RSS MiB"]
    for name, rows in result.get("speed", {}).items():
        for ctx, r in sorted(rows.items(), key=lambda kv: int(kv[0])):
            lines.append(
                f"{name:15s} {int(ctx):7d}  {r['prefill_tokens_per_s']:7.1f} ({r['prefill_tokens_per_cpu_s']:6.1f})"
                f"      {r['decode_ms_per_step']:7.1f} ({r['decode_cpu_ms_per_step']:6.1f})"
                f"       {_mb(r['bytes_per_token']):>8s}       {r['peak_rss_bytes'] / 2**20:7.0f}"
            )
    batch = result.get("batch")
    if batch:
        lines += ["", f"aggregate decode at {batch['context']} tokens per sequence",
                  "engine          batch  tokens/s (per CPU s)   ms/step   cache MB   peak RSS MiB"]  # fmt: skip
        for name, rows in batch["engines"].items():
            for b, r in sorted(rows.items(), key=lambda kv: int(kv[0])):
                per_cpu = int(b) * 1e3 / r["decode_cpu_ms_per_step"]
                lines.append(
                    f"{name:15s} {int(b):5d}  {r['decode_tokens_per_s']:8.1f} ({per_cpu:8.1f})"
                    f"     {r['decode_ms_per_step']:7.1f}   {_mb(r['cache_bytes']):>8s}"
                    f"   {r['peak_rss_bytes'] / 2**20:8.0f}"
                )
    for name, r in result.get("ppl", {}).items():
        lines.append(f"held-out ppl {name}: {r['ppl']:.3f} ({r['tokens']} tokens)")
    lines.append("")
    for name, t in result.get("targets", {}).items():
        if "value" in t:
            lines.append(f"target {name}: {t['value']:.3f} ({t['target']}) {'hit' if t['hit'] else 'MISS'}")
        else:
            lines.append(
                f"target {name}: wall {t['wall']:.3f}, CPU {t['cpu']:.3f} ({t['target']}) "
                f"{'hit' if t['hit_wall'] else 'MISS'} / {'hit' if t['hit_cpu'] else 'MISS'}"
            )
    return "\n".join(lines)


def plot(result: dict[str, Any], path: Path) -> None:
    """Three panels: decode CPU ms/token and prefill tokens/CPU-s against context, aggregate tokens/s against batch."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(15, 4))
    for name, rows in result.get("speed", {}).items():
        ctx = sorted(rows, key=int)
        xs = [int(c) for c in ctx]
        axes[0].plot(xs, [rows[c]["decode_cpu_ms_per_step"] for c in ctx], marker="o", label=name)
        axes[1].plot(xs, [rows[c]["prefill_tokens_per_cpu_s"] for c in ctx], marker="o", label=name)
    axes[0].set(xscale="log", xlabel="context (tokens)", ylabel="CPU ms / token", title="decode, batch 1")
    axes[1].set(xscale="log", xlabel="context (tokens)", ylabel="tokens / CPU s", title="prefill")
    batch = result.get("batch")
    if batch:
        for name, rows in batch["engines"].items():
            bs = sorted(rows, key=int)
            axes[2].plot([int(b) for b in bs], [int(b) * 1e3 / rows[b]["decode_cpu_ms_per_step"] for b in bs],
                         marker="o", label=name)  # fmt: skip
        axes[2].set(xscale="log", xlabel="batch", ylabel="tokens / CPU s",
                    title=f"aggregate decode, {batch['context']} tokens each")  # fmt: skip
    else:
        axes[2].set_axis_off()
        axes[2].text(0.5, 0.5, "batch part not measured in this run", ha="center", va="center")
    for ax in axes:
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=7)
    fig.suptitle(f"SmolLM2-135M serving, {result['facts']['threads']} thread(s), {result['facts']['date']}")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
