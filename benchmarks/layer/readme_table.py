"""The layer results page's tables, generated from committed benchmark JSON (never typed by hand).

    python -m benchmarks.layer.readme_table benchmarks/results/layer/layer_*.json \
        --update benchmarks/results/layer/README.md

rewrites the text between ``<!-- bench:start -->`` and ``<!-- bench:end -->`` of that page.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from benchmarks.output import print_or_update

START, END = "<!-- bench:start -->", "<!-- bench:end -->"
COLUMNS = [  # header, key, kind
    ("T", "seq_len", "int"),
    ("floor ms", "floor_fwd_ms", "ms"),
    ("LM ms", "lm_fwd_ms", "ms"),
    ("LM/floor", "lm_floor_fwd_ms", "x2"),
    ("SDPA ms", "sdpa_fwd_ms", "ms"),
    ("vs SDPA", ("sdpa_fwd_ms", "lm_fwd_ms"), "ratio"),
    ("MHA ms", "mha_fwd_ms", "ms"),
    ("floor f+b", "floor_fwdbwd_ms", "ms"),
    ("LM f+b", "lm_fwdbwd_ms", "ms"),
    ("f+b LM/floor", "lm_floor_fwdbwd_ms", "x2"),
    ("SDPA f+b", "sdpa_fwdbwd_ms", "ms"),
    ("f+b vs SDPA", ("sdpa_fwdbwd_ms", "lm_fwdbwd_ms"), "ratio"),
    ("LM mem", "lm_mem_mb", "mb"),
    ("SDPA mem", "sdpa_mem_mb", "mb"),
    ("MHA mem", "mha_mem_mb", "mb"),
    ("MHA(w) mem", "mha_w_mem_mb", "mb"),
    ("LM dec", "lm_decode_ms", "ms3"),
    ("SDPA dec", "sdpa_decode_ms", "ms3"),
]
SHORT = {"skipped (over budget)": "over budget"}


def _value(row: dict, key) -> float | None:
    cell = row.get(key)
    return None if not isinstance(cell, dict) else cell.get("value")


def _cell(row: dict, key, kind: str) -> str:
    if kind == "int":
        return str(row[key])
    if kind == "ratio":
        top, bottom = _value(row, key[0]), _value(row, key[1])
        return "–" if top is None or bottom is None else f"{top / bottom:.2f}×"
    cell = row.get(key)
    if cell is None:
        return "–"
    if cell.get("value") is None:
        return SHORT.get(cell["status"], cell["status"])
    value = cell["value"]
    if kind == "x2":
        return f"{value:.2f}×"
    if kind == "mb":
        return f"{value:.0f} MB" if value < 10240 else f"{value / 1024:.1f} GB"
    if kind == "ms3":
        return f"{value:.2f}"
    return f"{value:.0f}"


def table(data: dict) -> list[str]:
    rows = data["rows"]
    used = [(h, k, kind) for h, k, kind in COLUMNS if kind == "int" or any(_cell(r, k, kind) != "–" for r in rows)]
    lines = ["| " + " | ".join(h for h, _, _ in used) + " |", "|" + "---|" * len(used)]
    lines += ["| " + " | ".join(_cell(r, k, kind) for _, k, kind in used) + " |" for r in rows]
    return lines


def targets(data: dict) -> list[str]:
    verdict = {True: "**met**", False: "**missed**", None: "not measured"}
    out = []
    for check in data["targets"]:
        value = check["measured"]
        shown = "–" if value is None else (f"{value:.2f}" if isinstance(value, float) else str(value))
        out.append(f"- {check['target']}: {shown} — {verdict[check['met']]}")
    return out


def extras(data: dict) -> list[str]:
    found = data.get("extras") or {}
    out: list[str] = []
    decode = found.get("decode")
    if decode:
        out.append(f"Decode vs weight reads (same run; read bandwidth {decode['read_bandwidth_gbs']:.1f} GB/s):")
        out.append("")
        out += ["| weights | MiB | read time ms | decode ms/token | decode / read |", "|---|---|---|---|---|"]
        for name in ("fp32", "bf16"):
            d = decode[name]
            out.append(f"| {name} | {d['weight_mib']:.1f} | {d['weight_read_ms']:.2f} | {d['decode_ms']:.2f} | "
                       f"{d['ratio']:.1f}× |")  # fmt: skip
        out.append("")
    sweep = found.get("decay_rank_sweep")
    if sweep:
        out.append(f"`decay_rank` sweep (forward at T={sweep[0]['seq_len']}, alternated round by round):")
        out.append("")
        out += ["| decay_rank | decay params | fwd ms | floor ms | LM/floor | fwd vs full rank | decode ms |",
                "|---|---|---|---|---|---|---|"]  # fmt: skip
        for r in sweep:
            rel = "–" if r["fwd_vs_full_rank"] is None else f"{r['fwd_vs_full_rank']:.2f}×"
            out.append(f"| {r['decay_rank'] or 'None (full)'} | {r['decay_params']:,} | {r['fwd_ms']:.0f} | "
                       f"{r['floor_ms']:.0f} | {r['lm_floor']:.2f}× | {rel} | {r['decode_ms']:.2f} |")  # fmt: skip
        out.append("")
    comp = found.get("compile")
    if comp:
        out.append(f"Whole model, `torch.compile` vs eager: {comp['model']}, T={comp['seq_len']}: eager "
                   f"{comp['eager_ms']:.0f} ms, compiled {comp['compiled_ms']:.0f} ms (eager/compiled "
                   f"{comp['eager_over_compiled']:.2f}×, compile {comp['compile_s']:.0f} s, max |diff| "
                   f"{comp['max_abs_diff']:.1e}).")  # fmt: skip
        out.append("")
    return out


def render(paths: list[Path]) -> str:
    lines: list[str] = []
    for path in paths:
        data = json.loads(path.read_text(encoding="utf-8"))
        cfg, env = data["config"], data["environment"]
        lines.append(f"**{path.name}** — E={cfg['embed_dim']}, H={cfg['num_heads']}, B={cfg['batch_size']}, "
                     f"{cfg['dtype'].removeprefix('torch.')}, causal; torch {env['torch']}, {env['threads']} threads, "
                     f"{env['cpu_capability']}, backend `{env['liquid_scan_backend']}`.")  # fmt: skip
        lines.append("")
        lines += table(data)
        lines.append("")
        lines += extras(data)
        lines.append("Targets in this run:")
        lines.append("")
        lines += targets(data)
        lines.append("")
    return "\n".join(lines).rstrip() + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("json", nargs="+", type=Path, help="layer benchmark JSON files, in the order to show")
    parser.add_argument("--update", type=Path, help="page to rewrite between the bench markers")
    args = parser.parse_args(argv)
    print_or_update(render(args.json), args.update, START, END)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
