"""Long-context retrieval of SmolLM2 variants: pass key, needle in the essays, multi-key (``hf-retrieval``).

Perplexity is mostly local; this asks whether a model can still *use* a fact it read thousands of tokens ago.
Every row (the original, the hybrid with some of its memories, pure liquid, other linearizations) answers the
same prompts (``retrieval_data.py``: fixed texts, a seed) greedily; a prompt is prefilled in one forward and
the answer decoded token by token through the model's cache, so each row also reports its decode state after
the prefill (bytes) and its decode time per token.

A row is ``NAME=SOURCE[:key=value,...]``: SOURCE is ``original`` or a linearized DIR (``from_pretrained``);
keys: ``mode`` (``hybrid``, or ``window`` — the exact memories only, the liquid state switched off),
``global_cache`` (slots per layer and KV head), ``cache_block``, ``cache_score`` (``attention``, ``recall`` or
``prompt``), ``weights`` (``fp32``, ``bf16`` or ``int8``: how the base weights are held, ``hf/weights.py``; the
only setting the original takes). Each row writes ``OUT/NAME.json`` (every case: prompt tokens, depth, answer,
hit, timings) and ``OUT/NAME.png`` (a depth × length heat map per task); ``--report`` combines every row JSON
in OUT into ``OUT/summary.json`` and prints the table.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import torch

from benchmarks.hf.retrieval_data import TASKS, Case, PromptBuilder, make_cases, score, split_sentences
from benchmarks.hf.retrieval_report import plot_row, print_table, summarise, write_summary

DEFAULT_LENGTHS = "1024,2048,4096,8192"
DEFAULT_DEPTHS = "0.1,0.3,0.5,0.7,0.9"
MAX_NEW_TOKENS = {"passkey": 10, "needle": 12, "multikey": 10}
ROW_KEYS = {"mode": str, "global_cache": int, "cache_block": int, "cache_score": str, "weights": str}


def parse_row(text: str) -> tuple[str, str, dict[str, Any]]:
    """``NAME=SOURCE[:key=value,...]`` → ``(name, source, settings)``; a clear error for anything else."""
    name, sep, rest = text.partition("=")
    if not sep or not name or not rest:
        raise argparse.ArgumentTypeError(f"row {text!r}: expected NAME=SOURCE[:key=value,...]")
    source, _, options = rest.partition(":")
    settings: dict[str, Any] = {}
    for item in filter(None, options.split(",")):
        key, eq, value = item.partition("=")
        if not eq or key not in ROW_KEYS:
            raise argparse.ArgumentTypeError(f"row {name}: unknown setting {item!r} (known: {', '.join(ROW_KEYS)})")
        settings[key] = ROW_KEYS[key](value)
    if source == "original" and set(settings) - {"weights"}:
        raise argparse.ArgumentTypeError(f"row {name}: the original model takes only weights=")
    if "weights" in settings:
        from liquid_memory.hf.weights import WEIGHT_FORMATS

        if settings["weights"] not in WEIGHT_FORMATS:
            raise argparse.ArgumentTypeError(f"row {name}: weights must be one of {', '.join(WEIGHT_FORMATS)}")
    return name, source, settings


def load_row(source: str, settings: dict[str, Any]) -> tuple[Any, Any, dict[str, Any]]:
    """``(model, tokenizer, description)`` of one row."""
    from liquid_memory.hf import load_smollm2
    from liquid_memory.hf.io import from_pretrained, read_config
    from liquid_memory.hf.patch import set_memory, set_mode
    from liquid_memory.hf.weights import check_format, convert_weights

    weights = settings.get("weights", "fp32")
    check_format(weights)
    if source == "original":
        model, tokenizer = load_smollm2()
        return convert_weights(model, weights), tokenizer, {"source": "original", "weights": weights}
    model, tokenizer = from_pretrained(source, global_cache=settings.get("global_cache"), weights=weights)
    if "cache_block" in settings or "cache_score" in settings:
        set_memory(model, cache_block=settings.get("cache_block"), cache_score=settings.get("cache_score"))
    set_mode(model, settings.get("mode", "hybrid"))
    config = read_config(source)
    attn = model.model.layers[0].self_attn
    return model, tokenizer, {
        "source": "linearized", "window": attn.window, "sinks": attn.sinks, "global_cache": attn.global_cache,
        "cache_block": attn.cache_block, "cache_score": attn.cache_score, "mode": attn.mode, "weights": weights,
        "training": config.get("training", {}),
    }  # fmt: skip


@torch.no_grad()
def answer(model: Any, ids: list[int], max_new: int, stop: set[int]) -> dict[str, Any]:
    """Greedy answer: one prefill forward, then one token per step through the cache."""
    from transformers import DynamicCache

    from liquid_memory.hf.cache import LiquidHybridCache, cache_nbytes
    from liquid_memory.hf.patch import is_patched

    cache = LiquidHybridCache(model) if is_patched(model) else DynamicCache(config=model.config)
    t0 = time.perf_counter()
    out = model(input_ids=torch.tensor([ids]), past_key_values=cache, use_cache=True, logits_to_keep=1)
    prefill_s = time.perf_counter() - t0
    state_bytes = cache_nbytes(cache)
    token = int(out.logits[0, -1].argmax())
    tokens, steps = [token], []
    while token not in stop and len(tokens) < max_new:
        t0 = time.perf_counter()
        out = model(input_ids=torch.tensor([[token]]), past_key_values=cache, use_cache=True)
        steps.append(time.perf_counter() - t0)
        token = int(out.logits[0, -1].argmax())
        tokens.append(token)
    return {"tokens": tokens, "prefill_s": prefill_s, "decode_ms": 1000 * statistics.median(steps) if steps else None,
            "state_bytes": state_bytes}  # fmt: skip


def run_row(model: Any, tokenizer: Any, cases: list[Case], builder: PromptBuilder, log=print) -> list[dict[str, Any]]:
    stop = {tokenizer.eos_token_id, tokenizer.convert_tokens_to_ids("<|im_end|>")}
    results = []
    for i, case in enumerate(cases):
        ids = builder.ids(case)
        got = answer(model, ids, MAX_NEW_TOKENS[case.task], stop)
        text = tokenizer.decode(got.pop("tokens"), skip_special_tokens=True)
        results.append({**case.to_json(), "prompt_tokens": len(ids), "answer_text": text, **score(text, case), **got})
        r = results[-1]
        log(f"[{i + 1}/{len(cases)}] {case.task} {case.length} depth {case.depth}: {'HIT ' if r['hit'] else 'miss'} "
            f"{text.strip()[:40]!r} ({r['prefill_s']:.1f} s prefill)")  # fmt: skip
    return results


def heldout_perplexity(model: Any, tokenizer: Any, contexts: list[int], max_tokens: int) -> dict[str, float]:
    """Held-out essay perplexity per context (``hf-quality``'s measure: non-overlapping windows).

    A ``"prompt"``-scored cache is chosen by a call's last queries, so in a one-call window every earlier
    position would read keys chosen with knowledge of later text; such a row is scored with the streaming
    ``"attention"`` score instead (what its decode steps use), so no prediction sees the future."""
    from benchmarks.hf.quality import perplexity
    from liquid_memory.hf.patch import patched_layers, set_memory
    from liquid_memory.hf.smollm import essay_token_ids

    ids = essay_token_ids(tokenizer, "heldout")
    layers = patched_layers(model)
    prompt = bool(layers) and layers[0].cache_score == "prompt"
    if prompt:
        set_memory(model, cache_score="attention")
    try:
        return {str(c): perplexity(model, ids, c, max_tokens)["ppl"] for c in contexts}
    finally:
        if prompt:
            set_memory(model, cache_score="prompt")


def machine() -> dict[str, Any]:
    flags = set()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                flags = set(line.split(":", 1)[1].split())
                break
    except OSError:
        pass
    return {"cpu": platform.processor() or platform.machine(), "torch": torch.__version__,
            "threads": torch.get_num_threads(), "avx2": "avx2" in flags, "avx512f": "avx512f" in flags,
            "avx512_bf16": "avx512_bf16" in flags, "amx": any(f.startswith("amx") for f in flags)}  # fmt: skip


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--row", action="append", type=parse_row, default=[], help="NAME=SOURCE[:key=value,...]")
    p.add_argument("--tasks", default=",".join(TASKS))
    p.add_argument("--lengths", default=DEFAULT_LENGTHS, help="prompt lengths in tokens (SmolLM2 takes 8192)")
    p.add_argument("--depths", default=DEFAULT_DEPTHS, help="share of the haystack before the asked fact")
    p.add_argument("--per-cell", type=int, default=2, help="prompts per (task, length, depth)")
    p.add_argument("--multikey-facts", type=int, default=4)
    p.add_argument("--multikey-lengths", default="1024,2048,4096", help="prompt lengths of the multikey task")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--out-dir", default="benchmarks/results/smollm2/retrieval")
    p.add_argument("--ppl-contexts", default="512,2048", help="held-out perplexity at these contexts ('' = none)")
    p.add_argument("--ppl-tokens", type=int, default=8192, help="held-out tokens scored per context")
    p.add_argument("--ppl-only", action="store_true", help="only (re)measure perplexity into existing row JSONs")
    p.add_argument("--report", action="store_true", help="only combine the row JSONs in OUT into summary.json")


def run(args: argparse.Namespace) -> int:
    out = Path(args.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.report:
        print_table(write_summary(out))
        return 0
    if not args.row:
        raise SystemExit("give at least one --row NAME=SOURCE[:key=value,...] (or --report)")
    from liquid_memory.data.essays import joined, train_heldout_split

    _, heldout = train_heldout_split()
    essays = split_sentences(joined(heldout))
    tasks = tuple(t for t in args.tasks.split(",") if t)
    lengths = [int(x) for x in args.lengths.split(",")]
    depths = [float(x) for x in args.depths.split(",")]
    cases = []
    for task in tasks:
        task_lengths = [int(x) for x in args.multikey_lengths.split(",")] if task == "multikey" else lengths
        cases += make_cases(args.seed, task_lengths, depths, args.per_cell, (task,), args.multikey_facts, len(essays))
    for name, source, settings in args.row:
        model, tokenizer, description = load_row(source, settings)
        ppl = heldout_perplexity(model, tokenizer, [int(x) for x in args.ppl_contexts.split(",") if x], args.ppl_tokens)
        if args.ppl_only:
            path = out / f"{name}.json"
            if not path.is_file():
                raise SystemExit(f"--ppl-only: {path} does not exist (run the row first)")
            row = json.loads(path.read_text(encoding="utf-8"))
            row["summary"]["perplexity"] = ppl
            path.write_text(json.dumps(row, indent=1) + "\n", encoding="utf-8")
            print(f"{name}: perplexity {ppl}")
            continue
        results = run_row(model, tokenizer, cases, PromptBuilder(tokenizer, essays))
        row = {"name": name, "model": description, "seed": args.seed, "per_cell": args.per_cell,
               "date": datetime.now(UTC).strftime("%Y-%m-%d"), "machine": machine(), "cases": results,
               "summary": {**summarise(results), "perplexity": ppl},
               "command": getattr(args, "command_line", None)}  # fmt: skip
        (out / f"{name}.json").write_text(json.dumps(row, indent=1) + "\n", encoding="utf-8")
        plot_row(row, out / f"{name}.png")
        print(f"wrote {out / name}.json and .png")
        del model
    print_table(write_summary(out))
    return 0
