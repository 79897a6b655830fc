"""``python -m benchmarks lm``: liquid vs liquidnet vs attention LMs at the same width, depth and parameter count.

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

from benchmarks.lm.runs import paired_ratio, seed_summary, train_or_reuse
from liquid_memory.lm.train import LIQUID_FLAGS, TrainArgs, build_optimizer
from liquid_memory.models import LiquidLM, LiquidLMConfig
from liquid_memory.models.short_conv import DEFAULT_KERNEL

MIXERS = ("liquid", "liquidnet", "attention")
# Bench model names → the LiquidLMConfig fields that distinguish them (same width, depth, parameter count). Written
# out, not taken from RECOMMENDED_LIQUID_KWARGS: a row's name must keep its meaning when the recommendation changes.
_GATE_EPS = {"output_gate": True, "out_norm_eps": 1e-2}
_QKV_CONV = {"short_conv": DEFAULT_KERNEL, "conv_qkv": True}
BENCH_MODELS: dict[str, dict[str, Any]] = {
    "liquid": {"mixer": "liquid"},
    "liquid-conv": {"mixer": "liquid", "short_conv": DEFAULT_KERNEL},
    "liquid-gate": {"mixer": "liquid", "liquid_kwargs": {"output_gate": True}},
    "liquid-eps": {"mixer": "liquid", "liquid_kwargs": {"out_norm_eps": 1e-2}},
    "liquid-gate-eps": {"mixer": "liquid", "liquid_kwargs": _GATE_EPS},
    # MQAR's best recall configuration (q/k/v short convs + gate + eps; LiquidLM's conv init): its perplexity cost
    "liquid-qkvconv-gate-eps": {"mixer": "liquid", **_QKV_CONV, "liquid_kwargs": _GATE_EPS},
    # + L2-normalised q / k (LiquidMemory's qk_norm, as in the MQAR -qkn spec), without and with the q/k/v convs
    "liquid-gate-eps-qkn": {"mixer": "liquid", "liquid_kwargs": {**_GATE_EPS, "qk_norm": True}},
    "liquid-qkvconv-gate-eps-qkn": {"mixer": "liquid", **_QKV_CONV, "liquid_kwargs": {**_GATE_EPS, "qk_norm": True}},
    # + LiquidMemory's own q/k/v short conv (short_conv=4, after the projections), alone and beside the model-level ones
    "liquid-gate-eps-qkn-sc4": {"mixer": "liquid", "liquid_kwargs": {**_GATE_EPS, "qk_norm": True, "short_conv": 4}},
    "liquid-qkvconv-gate-eps-qkn-sc4": {
        "mixer": "liquid",
        **_QKV_CONV,
        "liquid_kwargs": {**_GATE_EPS, "qk_norm": True, "short_conv": 4},
    },  # fmt: skip
    "liquidnet": {"mixer": "liquidnet"},
    "attention": {"mixer": "attention"},
}


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The options of ``python -m benchmarks lm``."""
    p.add_argument("--out-dir", default="bench_results/lm", help="lm_bench.json / .png / .md and the runs")
    p.add_argument("--runs-dir", default=None, help="checkpoints and tokenizer (default OUT_DIR/runs; not results)")
    p.add_argument("--mixers", type=parse_models, default=",".join(MIXERS),
                   help=f"models, comma-separated: {', '.join(BENCH_MODELS)}")  # fmt: skip
    p.add_argument("--data", default=None, help="training text (default: the essays, fixed held-out split)")
    for name, default in (("d_model", 256), ("n_layers", 8), ("n_heads", 4), ("vocab_size", 4096), ("seq_len", 256),
                          ("batch_size", 8), ("steps", 300), ("warmup", 30), ("seed", 0)):  # fmt: skip
        p.add_argument("--" + name.replace("_", "-"), type=int, default=default)
    p.add_argument("--seeds", type=_seed_list, default=None,
                   help="train every model once per seed (init and batch order), e.g. 0,1,2; perplexity is reported "
                        "per seed and as exp(mean held-out loss). Default: --seed alone")  # fmt: skip
    p.add_argument("--reuse-runs", action="store_true",
                   help="take a seed's finished run from RUNS_DIR/MODEL/seedN instead of training it again, when its "
                        "logged configuration and training arguments equal this command's")  # fmt: skip
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--train-threads", type=int, default=None, help="torch threads while training (default: all)")
    p.add_argument("--speed-threads", type=int, default=None, help="torch threads for the speed columns")
    p.add_argument("--throughput-lens", default="512,2048")
    p.add_argument("--throughput-tokens", type=int, default=4096, help="tokens per timed training step")
    p.add_argument("--decode-contexts", default="256,1024,4096,16384")
    p.add_argument("--decode-tokens", type=int, default=32, help="decoded tokens timed per context length")
    p.add_argument("--repeats", type=int, default=3, help="timed repetitions (the median is reported)")
    p.add_argument("--no-progress", dest="progress", action="store_false")


def parse_models(text: str) -> list[str]:
    """``"liquid,attention"`` → names; an unknown name is an argparse usage error listing the known ones."""
    names = [m.strip() for m in text.split(",") if m.strip()]
    unknown = [m for m in names if m not in BENCH_MODELS]
    if unknown or not names:
        known = ", ".join(BENCH_MODELS)
        raise argparse.ArgumentTypeError(f"unknown or no models {unknown or text!r}; choose from {known}")
    return names


def _seed_list(text: str) -> list[int]:
    try:
        seeds = _ints(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"seeds must be comma-separated integers, got {text!r}") from None
    if not seeds or len(set(seeds)) != len(seeds):
        raise argparse.ArgumentTypeError(f"need at least one seed and no repeats, got {text!r}")
    return seeds


def matched_configs(args: argparse.Namespace, vocab_size: int, names: list[str]) -> dict[str, LiquidLMConfig]:
    """One config per model; SwiGLU widths chosen so every model has the ``liquid`` model's parameter count."""
    base = dict(vocab_size=vocab_size, d_model=args.d_model, n_layers=args.n_layers, n_heads=args.n_heads,
                max_seq_len=args.seq_len)  # fmt: skip
    target = LiquidLM(LiquidLMConfig(mixer="liquid", **base)).num_parameters()
    configs = {}
    for name in names:
        probe = LiquidLMConfig(ffn_dim=1, **BENCH_MODELS[name], **base)
        without_mlp = LiquidLM(probe).num_parameters() - 3 * args.d_model * args.n_layers
        ffn = round((target - without_mlp) / (3 * args.d_model * args.n_layers))
        configs[name] = LiquidLMConfig(ffn_dim=ffn, **BENCH_MODELS[name], **base)
    return configs


def _median(values: list[float]) -> float:
    return sorted(values)[len(values) // 2]


def training_throughput(
    configs: dict[str, LiquidLMConfig], seq_len: int, tokens: int, repeats: int
) -> dict[str, dict[str, Any]]:
    """Tokens/s of full training steps (forward, backward, AdamW) at ``seq_len`` with ``tokens`` per step.

    The mixers take turns step by step (round robin), so a change in machine load hits all of them alike.
    """
    batch = max(1, tokens // seq_len)
    ids = torch.randint(0, next(iter(configs.values())).vocab_size, (batch, seq_len + 1),
                        generator=torch.Generator().manual_seed(seq_len))  # fmt: skip
    setups = {}
    for mixer, config in configs.items():
        torch.manual_seed(0)
        model = LiquidLM(dataclasses.replace(config, max_seq_len=seq_len)).train()
        setups[mixer] = (model, build_optimizer(model, TrainArgs()))
    times: dict[str, list[float]] = {mixer: [] for mixer in configs}
    for rep in range(repeats + 1):  # the first pass warms up (allocations, kernel selection) and is not counted
        for mixer, (model, optimizer) in setups.items():
            t0 = time.perf_counter()
            logits, _ = model(ids[:, :-1])
            F.cross_entropy(logits.flatten(0, 1), ids[:, 1:].flatten()).backward()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            if rep:
                times[mixer].append(time.perf_counter() - t0)
    return {
        mixer: {
            "seq_len": seq_len,
            "batch": batch,
            "seconds_per_step": _median(t),
            "tokens_per_s": batch * seq_len / _median(t),
        }  # fmt: skip
        for mixer, t in times.items()
    }


@torch.no_grad()
def generation_speed(models: dict[str, LiquidLM], context: int, new_tokens: int, repeats: int) -> dict[str, Any]:
    """ms per decoded token with ``context`` tokens already in the state, and the state's size (round robin)."""
    vocab = next(iter(models.values())).config.vocab_size
    ids = torch.randint(0, vocab, (1, context), generator=torch.Generator().manual_seed(context))
    prefilled = {}
    for mixer, model in models.items():
        model.eval()
        t0 = time.perf_counter()
        logits, state = model(ids)
        prefilled[mixer] = (logits[:, -1].argmax(-1, keepdim=True), state, time.perf_counter() - t0)
    per_token: dict[str, list[float]] = {mixer: [] for mixer in models}
    for _ in range(repeats):
        for mixer, model in models.items():
            token, state, _ = prefilled[mixer]
            t0 = time.perf_counter()
            for _ in range(new_tokens):
                out, state = model(token, state=state)
                token = out[:, -1].argmax(-1, keepdim=True)
            per_token[mixer].append((time.perf_counter() - t0) / new_tokens)
    results = {}
    for mixer, times in per_token.items():
        ms = 1000 * _median(times)
        results[mixer] = {"context": context, "ms_per_token": ms, "tokens_per_s": 1000 / ms,
                          "state_bytes": prefilled[mixer][1].nbytes(), "prefill_s": prefilled[mixer][2]}  # fmt: skip
    return results


def run_bench(args: argparse.Namespace) -> dict[str, Any]:
    """Phase 1 trains each mixer in turn (``--steps 0`` skips it: speed only, untrained weights); phase 2
    measures speed with the mixers interleaved."""
    from liquid_memory.ops.dispatch import resolve_backend

    out = Path(args.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    runs_dir = Path(args.runs_dir or out / "runs")
    runs_dir.mkdir(parents=True, exist_ok=True)
    mixers = parse_models(args.mixers) if isinstance(args.mixers, str) else list(args.mixers)
    results: dict[str, Any] = {"command": getattr(args, "command_line", None), "runs": {}}
    logs: dict[str, Any] = {}
    default_threads = torch.get_num_threads()
    base = TrainArgs(
        data=args.data, d_model=args.d_model, n_layers=args.n_layers, n_heads=args.n_heads,
        vocab_size=args.vocab_size, seq_len=args.seq_len, batch_size=args.batch_size, steps=max(1, args.steps),
        warmup=args.warmup, lr=args.lr, seed=args.seed, eval_every=max(1, args.steps // 3), eval_windows=10**9,
        checkpoint_every=0, progress=args.progress, plot=False, tokenizer=str(runs_dir / "tokenizer.json"),
    )  # fmt: skip
    configs = _configs_after_tokenizer(args, base, mixers, runs_dir / "tokenizer.json")
    if "liquid" in configs:
        results["liquid_backend"] = resolve_backend(configs["liquid"].backend)
    models: dict[str, LiquidLM] = {}
    seeds = args.seeds or [args.seed]
    for mixer in mixers:
        results["runs"][mixer] = {
            "mixer": configs[mixer].mixer,
            "short_conv": configs[mixer].short_conv,
            "conv_qkv": configs[mixer].conv_qkv,
            "liquid_kwargs": configs[mixer].liquid_kwargs,
            "parameters": LiquidLM(configs[mixer]).num_parameters(),
            "ffn_dim": configs[mixer].ffn_dim,
            "seeds": [],
            "train_throughput": [],
            "generation": [],
        }
    for seed in seeds if args.steps > 0 else []:  # seeds outermost: a partial run still has paired seeds
        for mixer in mixers:
            if args.train_threads:
                torch.set_num_threads(args.train_threads)
            config = configs[mixer]
            train_args = dataclasses.replace(base, out_dir=str(runs_dir / mixer / f"seed{seed}"), seed=seed,
                                             mixer=config.mixer, ffn_dim=config.ffn_dim, short_conv=config.short_conv,
                                             conv_qkv=config.conv_qkv,
                                             **TrainArgs.liquid_flags(config.liquid_kwargs))  # fmt: skip
            summary, model, log = train_or_reuse(train_args, config, reuse=args.reuse_runs,
                                                 need_model=mixer not in models)  # fmt: skip
            if model is not None:
                models.setdefault(mixer, model)  # the first seed's model is timed in phase 2
            logs.setdefault(mixer, log)
            run = results["runs"][mixer]
            run["seeds"].append({
                "seed": seed, "heldout_loss": summary["heldout_loss"], "heldout_ppl": summary["heldout_ppl"],
                "final_train_loss": summary["final_loss"], "train_seconds": summary["seconds"],
                "reused": summary["reused"], "evals": log["evals"],
            })  # fmt: skip
            run.update(seed_summary(run["seeds"]))
            per_model = ("mixer", "ffn_dim", "out_dir", "short_conv", "conv_qkv", "seed", *LIQUID_FLAGS)
            results["setup"] = {k: v for k, v in summary["train_args"].items() if k not in per_model}
            results["setup"]["seeds"] = seeds
            results["data"], results["train_tokens"] = summary["data"], summary["train_tokens"]
            results["heldout_tokens"], results["tokens_seen"] = summary["heldout_tokens"], summary["tokens_seen"]
            _write(out, results, logs)  # after every run: a partial bench still leaves its numbers
    torch.set_num_threads(args.speed_threads or default_threads)
    for seq_len in _ints(args.throughput_lens):
        for mixer, row in training_throughput(configs, seq_len, args.throughput_tokens, args.repeats).items():
            results["runs"][mixer]["train_throughput"].append(row)
        _write(out, results, logs)
    for mixer in mixers:
        if mixer not in models:
            torch.manual_seed(0)
            models[mixer] = LiquidLM(configs[mixer])
    for context in _ints(args.decode_contexts):
        for mixer, row in generation_speed(models, context, args.decode_tokens, args.repeats).items():
            results["runs"][mixer]["generation"].append(row)
        _write(out, results, logs)
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
    from benchmarks.lm.report import render_png, render_table

    results["machine"] = {"platform": platform.platform(), "torch": torch.__version__,
                          "threads": torch.get_num_threads()}  # fmt: skip
    results["targets"] = targets(results)
    (out / "lm_bench.json").write_text(json.dumps(results, indent=1), encoding="utf-8")
    (out / "lm_bench.md").write_text(render_table(results), encoding="utf-8")
    render_png(results, logs, out / "lm_bench.png")


def targets(results: dict[str, Any]) -> dict[str, Any]:
    """The LM targets, evaluated on this run for each LiquidMemory model (only where both sides were
    measured); keys are suffixed with the model name when it is not plain ``liquid`` (e.g. ``liquid-conv``)."""
    runs = results["runs"]
    if "attention" not in runs:
        return {}
    attention = runs["attention"]
    out: dict[str, Any] = {}
    gen = attention["generation"]
    if len(gen) >= 2:
        out[f"attention_decode_growth_{gen[0]['context']}_to_{gen[-1]['context']}"] = (
            gen[-1]["ms_per_token"] / gen[0]["ms_per_token"]
        )
    base = {r["seq_len"]: r["tokens_per_s"] for r in attention["train_throughput"]}
    for name in (n for n in runs if BENCH_MODELS.get(n, {}).get("mixer") == "liquid"):
        liquid, tag = runs[name], "" if name == "liquid" else f"[{name}]"
        paired = paired_ratio(liquid, attention)
        if paired is not None:
            met = paired["value"] <= 1.10
            out["ppl_ratio_liquid_over_attention" + tag] = {**paired, "target": "<= 1.10", "met": met}
        speed = {r["seq_len"]: r["tokens_per_s"] for r in liquid["train_throughput"]}
        if 2048 in speed and 2048 in base:
            ratio = speed[2048] / base[2048]
            out["train_speed_ratio_at_2048" + tag] = {"value": ratio, "target": ">= 1.0", "met": ratio >= 1.0}
        gen = liquid["generation"]
        if len(gen) >= 2:
            growth = gen[-1]["ms_per_token"] / gen[0]["ms_per_token"]
            out[f"{name}_decode_growth_{gen[0]['context']}_to_{gen[-1]['context']}"] = growth
            out["liquid_decode_flat" + tag] = {"value": growth, "target": "<= 1.2 (flat)", "met": growth <= 1.2}
    return out


def run(args: argparse.Namespace) -> int:
    """Train and measure every model, print the table (``lm_bench.md``); exit 1 when no run finished."""
    results = run_bench(args)
    print((Path(args.out_dir) / "lm_bench.md").read_text(encoding="utf-8"))
    return 0 if results["runs"] else 1
