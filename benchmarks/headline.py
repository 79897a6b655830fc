"""README's headline table, generated from the committed result JSON (never typed by hand).

    python -m benchmarks.headline                  # print the table
    python -m benchmarks.headline --update README.md

rewrites the text between ``<!-- headline:start -->`` and ``<!-- headline:end -->``. One row per target the
project states, hit or miss, each read from the file its results page describes.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchmarks.output import print_or_update

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
START, END = "<!-- headline:start -->", "<!-- headline:end -->"
MQAR_BEST = "liquid-qkvconv-u-gate-eps-qkn"  # the best recall configuration measured (mqar/README.md)
MQAR_PLAIN = "plain-liquid-sc4"  # LiquidMemory with its defaults as the only mixer of a plain stack
# the serving runs the headline reads (smollm2/serving/README.md): every 1K run of the current code (the machine's
# load moved the 1K ratios across their targets; a target is met only when it is met in every run), one 4K/8K run;
# runs of earlier versions of the code stay on the results page
SERVE_1K = ("serve_1thread_1k_fused_int8.json", "serve_1thread_1k_fused_int8_rerun.json",
            "serve_1thread_1k_fused_int8_third.json")  # fmt: skip
SERVE_LONG = "serve_1thread_4k_8k_fused_int8.json"
MQAR_HEADS = "-H2-"  # its two-head runs (the one-head runs are a variant of their own on the MQAR page)


@dataclass(frozen=True)
class Row:
    figure: str
    measured: str
    target: str
    met: bool
    page: str


def _load(relative: str) -> dict[str, Any]:
    return json.loads((RESULTS / relative).read_text(encoding="utf-8"))


def _layer_targets() -> dict[str, tuple[float, bool]]:
    """Every float32 layer run's targets, first measured value per target (files in name order)."""
    found: dict[str, tuple[float, bool]] = {}
    for path in sorted((RESULTS / "layer").glob("layer_*_float32_*.json")):
        for check in json.loads(path.read_text(encoding="utf-8"))["targets"]:
            if check["measured"] is not None and check["target"] not in found:
                found[check["target"]] = (check["measured"], check["met"])
    return found


def _layer_rows() -> list[Row]:
    t = _layer_targets()
    page = "benchmarks/results/layer/README.md"

    def row(figure: str, key: str, shown: str, target: str) -> Row:
        value, met = t[key]
        return Row(figure, shown.format(value), target, met, page)

    return [
        row("Layer forward vs SDPA, T=8192 (fp32)", "forward vs SDPA at 8192 >= 2.5x", "{:.2f}×", "≥ 2.5×"),
        row("Layer forward vs SDPA, T=32768", "forward vs SDPA at 32768 >= 8x", "{:.2f}×", "≥ 8×"),
        row("Layer forward+backward vs SDPA, T=8192", "forward+backward vs SDPA at 8192 >= 2.5x", "{:.2f}×", "≥ 2.5×"),
        row(
            "Layer forward / its own projection GEMMs, T=8192",
            "forward / its projection GEMMs at 8192 <= 1.10x",
            "{:.2f}×",
            "≤ 1.10×",
        ),
        row(
            "Layer forward peak extra memory, T=131072",
            "131072 completes with peak extra memory < 4 GB",
            "{:.0f} MB",
            "< 4 GB",
        ),
        row(
            "Decode step at 128K context / at 1K", "step() at 128K context <= 1.1x its time at 1K", "{:.2f}×", "≤ 1.1×"
        ),
    ]


def _lm_rows() -> list[Row]:
    page = "benchmarks/results/lm/README.md"
    qkn = _load("lm/qkn/lm_bench.json")["targets"]["ppl_ratio_liquid_over_attention[liquid-gate-eps-qkn]"]
    speed = _load("lm/speed_recommended/lm_bench.json")["targets"]
    train = speed["train_speed_ratio_at_2048[liquid-gate-eps-qkn]"]
    flat = speed["liquid_decode_flat[liquid-gate-eps-qkn]"]
    seeds = len(qkn["seeds"])
    return [
        Row(
            f"LiquidLM perplexity / attention's ({seeds} seeds, `lm train` default)",
            f"{qkn['value']:.3f}×",
            "≤ 1.10×",
            qkn["met"],
            page,
        ),
        Row(
            "LiquidLM training throughput / attention's, sequence 2048",
            f"{train['value']:.2f}×",
            "≥ 1×",
            train["met"],
            page,
        ),
        Row(
            "LiquidLM decode time per token, context 8192 / 256",
            f"{flat['value']:.2f}×",
            "≤ 1.2× (flat)",
            flat["met"],
            page,
        ),
    ]


def _mqar_row() -> Row:
    from benchmarks.mqar.report import annotate, merge

    doc = annotate(merge(sorted((RESULTS / "mqar").glob("*.json"))))
    runs = [v for v in doc["target"]["verdicts"]
            if v["model"] == MQAR_BEST and MQAR_HEADS in v["setting"] and v["decided"]]  # fmt: skip
    met = sorted(v["seed"] for v in runs if v["target_met"])
    return Row(
        "MQAR recall in LiquidLM (T=256, 16 pairs): 0.90 within 1.5× attention's steps",
        f"{len(met)} of {len(runs)} seeds (`{MQAR_BEST}`: seeds {', '.join(map(str, met))})",
        "every seed",
        len(runs) > 0 and len(met) == len(runs),
        "benchmarks/results/mqar/README.md",
    )


def _mqar_plain_row() -> Row:
    """The module as a user swaps it in (no LiquidLM around it), with its default short convolution."""
    from benchmarks.mqar.report import annotate, merge

    doc = annotate(merge(sorted((RESULTS / "mqar").glob("plain_*.json"))))
    runs = [r for r in doc["runs"] if r["model"] == MQAR_PLAIN]
    ratios = sorted(r["steps_ratio_vs_attention"] for r in runs if r["steps_ratio_vs_attention"] is not None)
    met = [x for x in ratios if x <= 1.5]
    shown = f"{len(met)} of {len(runs)} seeds ({ratios[0]:.2f}–{ratios[-1]:.2f}×)" if ratios else f"0 of {len(runs)}"
    return Row(
        "MQAR recall, the module alone (T=128, 8 pairs, `short_conv=4`): 0.90 within 1.5× attention's steps",
        shown,
        "every seed",
        len(runs) > 0 and len(met) == len(runs),
        "benchmarks/results/mqar/README.md",
    )


def _smollm2_rows() -> list[Row]:
    page = "benchmarks/results/smollm2/README.md"
    result = _load("smollm2/hf_smollm2.json")
    t = result["targets"]
    state = result["decode"]["hybrid_liquid"]["32768"]["state_bytes"] / 2**20
    decode = t["decode_time_32768_over_1024"]
    return [
        Row(
            "SmolLM2-135M hybrid (window 64): perplexity / original's at 2048",
            f"{t['hybrid_after_ppl_ratio_at_2048']['value']:.3f}×",
            "≤ 1.15×",
            t["hybrid_after_ppl_ratio_at_2048"]["hit"],
            page,
        ),
        Row(
            "SmolLM2 hybrid decode time, 32K / 1K context",
            f"{decode['value']:.2f}× ({state:.1f} MiB state)",
            "≤ 1.1×",
            decode["hit"] and t["decode_state_constant"]["hit"],
            page,
        ),
        Row(
            "SmolLM2 hybrid greedy agreement with the original",
            f"{t['hybrid_greedy_agreement']['value']:.1%}",
            "≥ 50 %",
            t["hybrid_greedy_agreement"]["hit"],
            page,
        ),
        Row(
            "SmolLM2 pure liquid (window 0): perplexity / original's at 2048",
            f"{t['pure_after_ppl_ratio_at_2048']['value']:.2f}×",
            "≤ 1.5×",
            t["pure_after_ppl_ratio_at_2048"]["hit"],
            page,
        ),
    ]


QUESTION_CACHE = "prompt512_window"  # the retrieval configuration the README recommends


def _question_cache_row(rows: dict[str, Any]) -> Row:
    """The hybrid with a question-chosen global cache against its targets, beside the original on the
    same prompts (its full row when both have as many prompts per cell, else its same-prompts subset)."""
    row = rows[QUESTION_CACHE]
    same = "original" if row["per_cell"] == rows["original"]["per_cell"] else "original, same prompts"
    mine, original = row["summary"], rows[same]["summary"]

    def rates(summary: dict[str, Any]) -> list[float]:
        found = summary["tasks"]["passkey"]["hit_rate"]
        return [found[str(n)] for n in (1024, 2048, 4096, 8192)]

    state = mine["per_length"]["4096"]["state_bytes"] / original["per_length"]["4096"]["state_bytes"]
    ours = "/".join(f"{100 * x:.0f}" for x in rates(mine))
    theirs = "/".join(f"{100 * x:.0f}" for x in rates(original))
    pk = rates(mine)
    return Row(
        "SmolLM2 hybrid, 512 question-chosen cache slots: pass key at 1K/2K/4K/8K; state / original's KV at 4K",
        f"{ours} % (original, same prompts: {theirs} %); {state:.2f}×",
        "≥ 95 % at 1K–4K, ≥ 80 % at 8K; ≤ 0.25×",
        min(pk[:3]) >= 0.95 and pk[3] >= 0.8 and state <= 0.25,
        "benchmarks/results/smollm2/retrieval/README.md",
    )


def _long_context_rows() -> list[Row]:
    """Pass-key retrieval of the hybrid against the original's, and the int8 hybrid's decode against llama.cpp's."""
    rows = _load("smollm2/retrieval/summary.json")["rows"]

    def passkey(name: str) -> list[float]:
        return list(rows[name]["summary"]["tasks"]["passkey"]["hit_rate"].values())

    hybrid, original = passkey("hybrid"), passkey("original")

    def span(rates: list[float]) -> str:
        return f"{min(rates):.0%}" if min(rates) == max(rates) else f"{min(rates):.0%}–{max(rates):.0%}"

    key = "hybrid_int8_over_llama_cpp_decode_{}"
    serving = [("1K", _serving_target(key.format(1024)))]
    serving += [(f"{ctx // 1024}K", _serving_target(key.format(ctx), (SERVE_LONG,))) for ctx in (4096, 8192)]
    return [
        Row(
            "SmolLM2 hybrid: pass key found at 1K–8K tokens",
            f"{span(hybrid)} at every length (original: {span(original)})",
            "the original's rate",
            min(h >= o for h, o in zip(hybrid, original, strict=True)),
            "benchmarks/results/smollm2/retrieval/README.md",
        ),
        _question_cache_row(rows),
        *(
            Row(
                f"SmolLM2 hybrid, int8 weights: decode time / llama.cpp's (same GGUF), {ctx} context, 1 thread",
                measured,
                target,
                met,
                "benchmarks/results/smollm2/serving/README.md",
            )
            for ctx, (measured, target, met) in serving
        ),
    ]


def _serving_target(key: str, names: tuple[str, ...] = SERVE_1K) -> tuple[str, str, bool]:
    """``(measured, target, met)`` of one serving target over runs (CPU-time medians): every run's ratio, met only
    when every run meets it."""
    targets = [_load(f"smollm2/serving/{name}")["targets"][key] for name in names]
    measured = " / ".join(f"{t['cpu']:.2f}×" for t in targets)
    if len(targets) > 1:
        measured += f" ({len(targets)} runs)"
    target = targets[0]["target"].replace("<=", "≤").replace(">=", "≥") + "×"
    return measured, target, all(t["hit_cpu"] for t in targets)


def _serving_rows() -> list[Row]:
    """The fp32 hybrid against the original at 1K (decode time, prefill throughput; medians of repeated runs)."""
    page = "benchmarks/results/smollm2/serving/README.md"
    return [
        Row("SmolLM2 hybrid (fp32): decode time / original's, 1K context, 1 thread",
            *_serving_target("hybrid_over_original_decode_1024"), page),
        Row("SmolLM2 hybrid (fp32): prefill tokens/s / original's, 1K context, 1 thread",
            *_serving_target("hybrid_over_original_prefill_1024"), page),
    ]  # fmt: skip


def rows() -> list[Row]:
    return [*_layer_rows(), *_lm_rows(), _mqar_plain_row(), _mqar_row(), *_smollm2_rows(), *_serving_rows(),
            *_long_context_rows()]  # fmt: skip


def render() -> str:
    lines = ["| figure | measured | target | | results |", "|---|---|---|---|---|"]
    for r in rows():
        verdict = "met" if r.met else "**missed**"
        lines.append(f"| {r.figure} | {r.measured} | {r.target} | {verdict} | [{r.page.split('/')[2]}]({r.page}) |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--update", type=Path, help="README to rewrite between the headline markers")
    args = parser.parse_args(argv)
    print_or_update(render(), args.update, START, END)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
