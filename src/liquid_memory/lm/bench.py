"""``liquid-memory lm bench``: liquid vs liquidnet vs attention LMs at the same width, depth and parameter count.

One run trains every mixer on the same tokens for the same steps (``lm train``'s loop, step-indexed batches),
then measures on the trained models: held-out perplexity (all held-out windows), training throughput
(forward + backward + AdamW step, tokens/s) at sequence 512 and 2048 with the same tokens per step, and
generation (ms per decoded token and decode-state bytes) against the context length already in the state.
Parameter counts are matched by the SwiGLU width (the mixers differ: LiquidMemory has 5 E×E projections,
attention and the seed mixer 4). Writes ``lm_bench.json``, ``lm_bench.png`` and ``lm_bench.md``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import platform
import time
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from liquid_memory.lm.train import TrainArgs, build_optimizer, run_training
from liquid_memory.models import LiquidLM, LiquidLMConfig

MIXERS = ("liquid", "liquidnet", "attention")


def add_bench_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out-dir", default="bench_results/lm", help="lm_bench.json / .png / .md and the runs")
    p.add_argument("--runs-dir", default=None, help="checkpoints and tokenizer (default OUT_DIR/runs; not results)")
    p.add_argument("--mixers", default=",".join(MIXERS))
    p.add_argument("--data", default=None, help="training text (default: the essays, fixed held-out split)")
    for name, default in (("d_model", 256), ("n_layers", 8), ("n_heads", 4), ("vocab_size", 4096), ("seq_len", 256),
                          ("batch_size", 8), ("steps", 300), ("warmup", 30), ("seed", 0)):  # fmt: skip
        p.add_argument("--" + name.replace("_", "-"), type=int, default=default)
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--train-threads", type=int, default=None, help="torch threads while training (default: all)")
    p.add_argument("--speed-threads", type=int, default=None, help="torch threads for the speed columns")
    p.add_argument("--throughput-lens", default="512,2048")
    p.add_argument("--throughput-tokens", type=int, default=4096, help="tokens per timed training step")
    p.add_argument("--decode-contexts", default="256,1024,4096,16384")
    p.add_argument("--decode-tokens", type=int, default=32, help="decoded tokens timed per context length")
    p.add_argument("--repeats", type=int, default=3, help="timed repetitions (the median is reported)")
    p.add_argument("--no-progress", dest="progress", action="store_false")


def matched_configs(args: argparse.Namespace, vocab_size: int, mixers: list[str]) -> dict[str, LiquidLMConfig]:
    """One config per mixer; SwiGLU widths chosen so every model has the ``liquid`` model's parameter count."""
    base = dict(vocab_size=vocab_size, d_model=args.d_model, n_layers=args.n_layers, n_heads=args.n_heads,
                max_seq_len=args.seq_len)  # fmt: skip
    target = LiquidLM(LiquidLMConfig(mixer="liquid", **base)).num_parameters()
    configs = {}
    for mixer in mixers:
        probe = LiquidLMConfig(mixer=mixer, ffn_dim=1, **base)
        without_mlp = LiquidLM(probe).num_parameters() - 3 * args.d_model * args.n_layers
        ffn = round((target - without_mlp) / (3 * args.d_model * args.n_layers))
        configs[mixer] = LiquidLMConfig(mixer=mixer, ffn_dim=ffn, **base)
    return configs


def _median(values: list[float]) -> float:
    return sorted(values)[len(values) // 2]


def training_throughput(config: LiquidLMConfig, seq_len: int, tokens: int, repeats: int) -> dict[str, Any]:
    """Tokens/s of full training steps (forward, backward, AdamW) at ``seq_len``, ``tokens`` per step."""
    config = dataclasses.replace(config, max_seq_len=seq_len)
    torch.manual_seed(0)
    model = LiquidLM(config).train()
    optimizer = build_optimizer(model, TrainArgs())
    batch = max(1, tokens // seq_len)
    ids = torch.randint(0, config.vocab_size, (batch, seq_len + 1))
    times = []
    for i in range(repeats + 1):  # the first step warms up (allocations, kernel selection) and is not counted
        t0 = time.perf_counter()
        logits, _ = model(ids[:, :-1])
        F.cross_entropy(logits.flatten(0, 1), ids[:, 1:].flatten()).backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        if i:
            times.append(time.perf_counter() - t0)
    seconds = _median(times)
    return {"seq_len": seq_len, "batch": batch, "seconds_per_step": seconds, "tokens_per_s": batch * seq_len / seconds}


@torch.no_grad()
def generation_speed(model: LiquidLM, context: int, new_tokens: int, repeats: int) -> dict[str, Any]:
    """ms per decoded token with ``context`` tokens already in the state, and the state's size."""
    model.eval()
    ids = torch.randint(0, model.config.vocab_size, (1, context), generator=torch.Generator().manual_seed(context))
    t0 = time.perf_counter()
    logits, state = model(ids)
    prefill = time.perf_counter() - t0
    token = logits[:, -1].argmax(-1, keepdim=True)
    per_token = []
    for _ in range(repeats):
        current, t0 = state, time.perf_counter()
        step_token = token
        for _ in range(new_tokens):
            out, current = model(step_token, state=current)
            step_token = out[:, -1].argmax(-1, keepdim=True)
        per_token.append((time.perf_counter() - t0) / new_tokens)
    ms = 1000 * _median(per_token)
    return {"context": context, "ms_per_token": ms, "tokens_per_s": 1000 / ms, "state_bytes": state.nbytes(),
            "prefill_s": prefill}  # fmt: skip


def run_bench(args: argparse.Namespace) -> dict[str, Any]:
    from liquid_memory.ops.dispatch import resolve_backend

    out = Path(args.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    runs_dir = Path(args.runs_dir or out / "runs")
    runs_dir.mkdir(parents=True, exist_ok=True)
    mixers = [m.strip() for m in args.mixers.split(",") if m.strip()]
    results: dict[str, Any] = {"command": getattr(args, "command_line", None), "runs": {}}
    logs = {}
    configs = None
    default_threads = torch.get_num_threads()
    for mixer in mixers:
        if args.train_threads:
            torch.set_num_threads(args.train_threads)
        train_args = TrainArgs(
            data=args.data, out_dir=str(runs_dir / mixer), mixer=mixer, d_model=args.d_model,
            n_layers=args.n_layers, n_heads=args.n_heads, vocab_size=args.vocab_size, seq_len=args.seq_len,
            batch_size=args.batch_size, steps=args.steps, warmup=args.warmup, lr=args.lr, seed=args.seed,
            eval_every=max(1, args.steps // 3), eval_windows=10**9, checkpoint_every=0, progress=args.progress,
            plot=False,
        )  # fmt: skip
        if configs is None:  # the vocabulary is known once the first run trained its tokenizer; reuse it
            configs = _configs_after_tokenizer(args, train_args, mixers, runs_dir / "tokenizer.json")
        train_args.ffn_dim = configs[mixer].ffn_dim
        train_args.tokenizer = str(runs_dir / "tokenizer.json")
        summary = run_training(train_args)
        model = summary.pop("model")
        logs[mixer] = summary.pop("log")
        torch.set_num_threads(args.speed_threads or default_threads)
        speed = [
            training_throughput(configs[mixer], n, args.throughput_tokens, args.repeats)
            for n in _ints(args.throughput_lens)
        ]  # noqa: E501
        generation = [generation_speed(model, n, args.decode_tokens, args.repeats) for n in _ints(args.decode_contexts)]
        results["runs"][mixer] = {
            "parameters": summary["parameters"], "ffn_dim": configs[mixer].ffn_dim,
            "heldout_loss": summary["heldout_loss"], "heldout_ppl": summary["heldout_ppl"],
            "final_train_loss": summary["final_loss"], "train_seconds": summary["seconds"],
            "evals": logs[mixer]["evals"], "train_throughput": speed, "generation": generation,
        }  # fmt: skip
        if mixer == "liquid":
            results["liquid_backend"] = resolve_backend(configs[mixer].backend)
        results["setup"] = {k: v for k, v in summary["train_args"].items() if k not in ("mixer", "ffn_dim", "out_dir")}
        results["data"], results["train_tokens"] = summary["data"], summary["train_tokens"]
        results["heldout_tokens"], results["tokens_seen"] = summary["heldout_tokens"], summary["tokens_seen"]
        _write(out, results, logs)  # after every mixer: a partial run still leaves its numbers
    return results


def _configs_after_tokenizer(args, train_args: TrainArgs, mixers: list[str], path: Path) -> dict[str, LiquidLMConfig]:
    from liquid_memory.lm.data import load_corpus
    from liquid_memory.lm.tokenizer import TextCodec

    codec = TextCodec.train(load_corpus(train_args.data).train, args.vocab_size)
    path.write_text(codec.to_json(), encoding="utf-8")
    return matched_configs(args, codec.vocab_size, mixers)


def _ints(text: str) -> list[int]:
    return [int(part) for part in text.split(",") if part.strip()]


def _write(out: Path, results: dict[str, Any], logs: dict[str, Any]) -> None:
    from liquid_memory.lm.bench_report import render_png, render_table

    results["machine"] = {"platform": platform.platform(), "torch": torch.__version__,
                          "threads": torch.get_num_threads()}  # fmt: skip
    results["targets"] = targets(results)
    (out / "lm_bench.json").write_text(json.dumps(results, indent=1), encoding="utf-8")
    (out / "lm_bench.md").write_text(render_table(results), encoding="utf-8")
    render_png(results, logs, out / "lm_bench.png")


def targets(results: dict[str, Any]) -> dict[str, Any]:
    """The issue's LM targets, evaluated on this run (only where both sides were measured)."""
    runs = results["runs"]
    if "liquid" not in runs or "attention" not in runs:
        return {}
    liquid, attention = runs["liquid"], runs["attention"]
    out: dict[str, Any] = {}
    if liquid["heldout_ppl"] and attention["heldout_ppl"]:
        ratio = liquid["heldout_ppl"] / attention["heldout_ppl"]
        out["ppl_ratio_liquid_over_attention"] = {"value": ratio, "target": "<= 1.10", "met": ratio <= 1.10}
    speed = {r["seq_len"]: r["tokens_per_s"] for r in liquid["train_throughput"]}
    base = {r["seq_len"]: r["tokens_per_s"] for r in attention["train_throughput"]}
    if 2048 in speed and 2048 in base:
        ratio = speed[2048] / base[2048]
        out["train_speed_ratio_at_2048"] = {"value": ratio, "target": ">= 1.0", "met": ratio >= 1.0}
    for name, run in (("liquid", liquid), ("attention", attention)):
        gen = run["generation"]
        if len(gen) >= 2:
            growth = gen[-1]["ms_per_token"] / gen[0]["ms_per_token"]
            out[f"{name}_decode_growth_{gen[0]['context']}_to_{gen[-1]['context']}"] = growth
    key = [k for k in out if k.startswith("liquid_decode_growth")]
    if key:
        out["liquid_decode_flat"] = {"value": out[key[0]], "target": "<= 1.2 (flat)", "met": out[key[0]] <= 1.2}
    return out


def run_bench_cli(args: argparse.Namespace) -> int:
    import sys

    args.command_line = "liquid-memory lm bench " + " ".join(sys.argv[3:])
    results = run_bench(args)
    print((Path(args.out_dir) / "lm_bench.md").read_text(encoding="utf-8"))
    return 0 if results["runs"] else 1
