"""Summaries, the table and the heat maps of the retrieval evaluation (``retrieval.py`` writes the rows)."""

from __future__ import annotations

import json
import statistics
from collections import defaultdict
from pathlib import Path
from typing import Any

SUMMARY_NAME = "summary.json"


def summarise(cases: list[dict[str, Any]]) -> dict[str, Any]:
    """Hit rates per task (per length, and per length × depth), decode state and times per length."""
    by_task: dict[str, Any] = {}
    cells: dict[tuple[str, int, float], list[bool]] = defaultdict(list)
    for c in cases:
        cells[(c["task"], c["length"], c["depth"])].append(c["hit"])
    for (task, length, depth), hits in sorted(cells.items()):
        entry = by_task.setdefault(task, {"hit_rate": {}, "cells": {}, "n": {}})
        entry["cells"].setdefault(str(length), {})[str(depth)] = sum(hits) / len(hits)
    for task, entry in by_task.items():
        for length in entry["cells"]:
            hits = [c["hit"] for c in cases if c["task"] == task and str(c["length"]) == length]
            entry["hit_rate"][length], entry["n"][length] = sum(hits) / len(hits), len(hits)
        distractor = [c["distractor"] for c in cases if c["task"] == task]
        entry["distractor_rate"] = sum(distractor) / len(distractor)
    per_length: dict[str, dict[str, Any]] = defaultdict(dict)
    for length in sorted({c["length"] for c in cases}):
        rows = [c for c in cases if c["length"] == length]
        decode = [c["decode_ms"] for c in rows if c["decode_ms"] is not None]
        per_length[str(length)] = {
            "state_bytes": statistics.median(c["state_bytes"] for c in rows),
            "decode_ms_per_token": statistics.median(decode) if decode else None,
            "prefill_tokens_per_s": statistics.median(c["prompt_tokens"] / c["prefill_s"] for c in rows),
        }
    return {"tasks": by_task, "per_length": dict(per_length)}


SAME_PROMPTS = "original, same prompts"  # the original on exactly the prompts of the rows with fewer per cell


def _prompt_key(case: dict[str, Any]) -> tuple:
    return case["task"], case["length"], case["depth"], tuple(case["facts"]), case["question"], case["answer"]


def same_prompts(original: dict[str, Any], others: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The original's summary over only the prompts the rows with fewer prompts per cell answered (they all draw
    the first prompts of each cell: the fair reference for them), or ``None`` when no row has fewer."""
    fewer = [r for r in others if r["per_cell"] < original["per_cell"]]
    if not fewer:
        return None
    asked = set.union(*({_prompt_key(c) for c in r["cases"]} for r in fewer))
    cases = [c for c in original["cases"] if _prompt_key(c) in asked]
    if not cases:
        return None
    return {**original, "name": SAME_PROMPTS, "per_cell": min(r["per_cell"] for r in fewer),
            "summary": {**summarise(cases), "perplexity": original["summary"].get("perplexity", {})}}  # fmt: skip


def write_summary(out: Path) -> dict[str, Any]:
    """Every row JSON in ``out`` → ``summary.json`` (name → model description + summary), with the original also
    summarised over the prompts of the rows measured with fewer prompts per cell (``SAME_PROMPTS``)."""
    loaded = []
    for path in sorted(out.glob("*.json")):
        if path.name == SUMMARY_NAME:
            continue
        loaded.append(json.loads(path.read_text(encoding="utf-8")))
    original = next((r for r in loaded if r["name"] == "original"), None)
    if original is not None:
        fair = same_prompts(original, [r for r in loaded if r is not original])
        loaded += [fair] if fair else []
    rows = {}
    for row in loaded:
        rows[row["name"]] = {"model": row["model"], "date": row["date"], "machine": row["machine"],
                             "seed": row["seed"], "per_cell": row["per_cell"], "summary": row["summary"]}  # fmt: skip
    summary = {"rows": rows}
    (out / SUMMARY_NAME).write_text(json.dumps(summary, indent=1) + "\n", encoding="utf-8")
    return summary


def _pct(x: float | None) -> str:
    return "–" if x is None else f"{100 * x:.0f}"


def table_lines(summary: dict[str, Any]) -> list[str]:
    """Markdown table: hit rate (%) per task and length; decode state and ms/token at the row's longest prompt."""
    rows = summary["rows"]
    lengths = sorted({int(length) for r in rows.values() for length in r["summary"]["per_length"]})
    tasks = [t for t in ("passkey", "needle", "multikey") if any(t in r["summary"]["tasks"] for r in rows.values())]
    base = rows.get("original", {}).get("summary", {}).get("perplexity", {})
    contexts = sorted({c for r in rows.values() for c in r["summary"].get("perplexity", {})}, key=int)
    head = ["row"] + [f"ppl {c} (×orig)" for c in contexts]
    head += [f"{t} {length // 1024}K" for t in tasks for length in lengths]
    head += ["state MiB (longest)", f"decode ms {lengths[0] // 1024}K", "decode ms (longest)"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    references = ("original", SAME_PROMPTS)  # first, in this order
    order = sorted(rows, key=lambda n: (references.index(n) if n in references else len(references), n))
    for name, r in ((n, rows[n]) for n in order):
        s = r["summary"]
        cells = [name]
        for c in contexts:
            value = s.get("perplexity", {}).get(c)
            ratio = f" ({value / base[c]:.3f}×)" if value and base.get(c) else ""
            cells.append(f"{value:.2f}{ratio}" if value else "–")
        for t in tasks:
            rates = s["tasks"].get(t, {}).get("hit_rate", {})
            cells += [_pct(rates.get(str(length))) for length in lengths]
        longest = max(s["per_length"], key=int)
        first, last = s["per_length"].get(str(lengths[0]), {}), s["per_length"][longest]
        at = f" ({int(longest) // 1024}K)"
        cells.append(f"{last['state_bytes'] / 2**20:.1f}{at}")
        cells += [f"{x['decode_ms_per_token']:.0f}" if x.get("decode_ms_per_token") else "–" for x in (first, last)]
        cells[-1] += at if cells[-1] != "–" else ""
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def print_table(summary: dict[str, Any]) -> None:
    print("\n".join(table_lines(summary)))


def plot_row(row: dict[str, Any], path: Path) -> None:
    """One heat map per task: depth (rows) × prompt length (columns), hit rate annotated."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    tasks = row["summary"]["tasks"]
    fig, axes = plt.subplots(1, len(tasks), figsize=(4.2 * len(tasks), 3.6), squeeze=False)
    for ax, (task, entry) in zip(axes[0], tasks.items(), strict=True):
        lengths = sorted(entry["cells"], key=int)
        depths = sorted({d for cell in entry["cells"].values() for d in cell}, key=float)
        grid = [[entry["cells"][length].get(d, float("nan")) for length in lengths] for d in depths]
        ax.imshow(grid, vmin=0, vmax=1, cmap="RdYlGn", aspect="auto")
        for i, line in enumerate(grid):
            for j, value in enumerate(line):
                ax.text(j, i, _pct(value), ha="center", va="center", fontsize=9)
        ax.set_xticks(range(len(lengths)), [f"{int(x) // 1024}K" for x in lengths])
        ax.set_yticks(range(len(depths)), [f"{float(d):.0%}" for d in depths])
        ax.set_xlabel("prompt length (tokens)")
        ax.set_ylabel("depth of the fact")
        ax.set_title(f"{task} (hit %, {row['per_cell']} per cell)")
    fig.suptitle(f"{row['name']}: retrieval, seed {row['seed']}, {row['date']}")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
