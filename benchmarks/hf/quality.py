"""``python -m benchmarks hf-quality``: a linearized SmolLM2 against the original (table, JSON, PNG).

- held-out perplexity (the essays of ``data.essays.HELDOUT_ESSAYS``) at several contexts, non-overlapping
  windows each scored from its first token, for the original, pure liquid before / after linearization,
  the hybrid after linearization and (optional, their own rows) window 0 with sink keys after linearization
  and a hybrid linearized at a wider window (``--wide-hybrid``; the target rows stay window 64 and pure);
- linearization cost (tokens, CPU minutes) from each DIR's ``linearize_log.json``;
- decode: per-token time and decode-state bytes at contexts 1K…32K, linearized hybrid vs the original
  with its KV cache. Decode cost depends on the cache's size, not its content, so the caches are made
  synthetically at the given length (random keys/values for the KV cache; for the liquid cache a real
  prefill of a few hundred tokens whose position counter is then moved to the context length);
- greedy agreement: share of the first ``new_tokens`` greedy tokens equal to the original's, on ``prompts``
  held-out prompts;
- its noise floor (part ``noise``): the same agreement of the original with itself in bfloat16, float64 and
  with eager instead of SDPA attention, and the original's top-1/top-2 margins along its greedy path.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch

from benchmarks.hf.parts import combine_parts
from benchmarks.output import format_table
from liquid_memory.hf.cache import LiquidHybridCache, cache_nbytes
from liquid_memory.hf.io import from_pretrained, read_config
from liquid_memory.hf.patch import patch_model
from liquid_memory.hf.smollm import essay_token_ids, load_smollm2


@torch.no_grad()
def perplexity(model: Any, ids: torch.Tensor, context: int, max_tokens: int) -> dict[str, float]:
    """exp(mean NLL) over non-overlapping windows of ``context`` tokens (at most ``max_tokens`` scored)."""
    windows = max(1, min(len(ids) // context, max_tokens // context))
    nll, count, t0 = 0.0, 0, time.perf_counter()
    for w in range(windows):
        chunk = ids[w * context : (w + 1) * context][None]
        hidden = model.model(input_ids=chunk, use_cache=False).last_hidden_state[0]
        for i in range(0, context - 1, 1024):  # logits in slices: [8192, 49152] fp32 would be 1.6 GB
            logits = model.lm_head(hidden[i : min(i + 1024, context - 1)]).float()
            target = chunk[0, i + 1 : i + 1 + len(logits)]
            nll += torch.nn.functional.cross_entropy(logits, target, reduction="sum").item()
            count += len(target)
    return {"ppl": math.exp(nll / count), "tokens": count, "windows": windows, "seconds": time.perf_counter() - t0}


def _kv_cache(model: Any, length: int) -> Any:
    from transformers import DynamicCache

    cfg = model.config
    cache = DynamicCache(config=cfg)
    shape = (1, cfg.num_key_value_heads, length, cfg.hidden_size // cfg.num_attention_heads)
    for idx in range(cfg.num_hidden_layers):
        cache.update(torch.randn(shape) * 0.5, torch.randn(shape) * 0.5, idx)
    return cache


def _liquid_cache(model: Any, prefill: torch.Tensor, length: int) -> Any:
    cache = LiquidHybridCache(model)
    model(input_ids=prefill[None], past_key_values=cache, use_cache=True)
    for layer in cache.layers:
        layer.cumulative_length = length
    return cache


@torch.no_grad()
def decode_timing(model: Any, cache: Any, length: int, steps: int, warmup: int = 3) -> dict[str, float]:
    """Median per-token time of ``steps`` greedy decode steps starting at position ``length``."""
    token = torch.tensor([[1]])
    times = []
    for i in range(warmup + steps):
        t0 = time.perf_counter()
        out = model(input_ids=token, past_key_values=cache, use_cache=True, position_ids=torch.tensor([[length + i]]))
        times.append(time.perf_counter() - t0)
        token = out.logits[:, -1].argmax(-1, keepdim=True)
    return {"ms_per_token": 1000 * statistics.median(times[warmup:]), "state_bytes": cache_nbytes(cache)}


@torch.no_grad()
def greedy_tokens(model: Any, prompt: torch.Tensor, new_tokens: int) -> list[int]:
    out = model.generate(input_ids=prompt[None], max_new_tokens=new_tokens, min_new_tokens=new_tokens,
                         do_sample=False, pad_token_id=0)  # fmt: skip
    return out[0, len(prompt) :].tolist()


def _fresh_original() -> tuple[Any, Any]:
    return load_smollm2()


MODELS = ("original", "pure_before", "pure_after", "hybrid_after", "window0_sinks_after", "wide_hybrid_after")
DIR_OPTION = {  # every linearized row and the option naming its DIR (measure() checks them before loading)
    "hybrid_after": "hybrid", "pure_after": "pure", "window0_sinks_after": "window0_sinks",
    "wide_hybrid_after": "wide_hybrid",
}  # fmt: skip
PARTS = ("ppl", "decode", "agreement", "noise")


def _load(name: str, args: argparse.Namespace) -> Any:
    if name == "original":
        return load_smollm2()[0]
    if name == "pure_before":
        return patch_model(load_smollm2()[0], window=0)
    return from_pretrained(getattr(args, DIR_OPTION[name]), weights=getattr(args, "weights", "fp32"))[0]


def measure(args: argparse.Namespace) -> dict[str, Any]:
    """The selected parts for the selected models (parts of one benchmark may run as separate processes)."""
    names, parts = args.models.split(","), args.parts.split(",")
    needs_original = sorted(set(parts) & {"decode", "agreement", "noise"})
    if needs_original and "original" not in names:  # they compare against the original: say so before loading
        raise SystemExit(f"--parts {','.join(needs_original)} compare against the original: add original to --models")
    unknown = sorted(set(names) - set(MODELS))
    if unknown:
        raise SystemExit(f"--models: unknown {', '.join(unknown)} (choose from {', '.join(MODELS)})")
    missing = [DIR_OPTION[n] for n in names if n in DIR_OPTION and not getattr(args, DIR_OPTION[n])]
    if missing:  # before loading anything: a typo should not cost a model load
        raise SystemExit(f"--models needs {', '.join('--' + m.replace('_', '-') + ' DIR' for m in missing)}")
    torch.manual_seed(0)
    torch.set_num_threads(args.threads)
    _, tok = load_smollm2()
    ids = essay_token_ids(tok, "heldout")
    contexts = [int(c) for c in args.contexts.split(",")]
    result: dict[str, Any] = {"heldout_tokens": len(ids), "threads": args.threads, "machine": args.machine,
                              "weights": getattr(args, "weights", "fp32")}  # fmt: skip
    configs = {option: read_config(getattr(args, option)) for option in DIR_OPTION.values() if getattr(args, option)}
    result["linearization"] = {option: {**cfg["training"], "window": cfg["window"]} for option, cfg in configs.items()}
    models = {name: _load(name, args) for name in names}
    if "ppl" in parts:
        result["perplexity"] = {}
        for name, model in models.items():
            result["perplexity"][name] = {
                str(c): perplexity(model, ids, c, args.max_eval_tokens if c < 8192 else c) for c in contexts
            }
            print(name, {c: round(v["ppl"], 2) for c, v in result["perplexity"][name].items()}, flush=True)
    if "decode" in parts:
        result["decode"] = _decode(models["original"], models["hybrid_after"], ids, args)
    if "agreement" in parts or "noise" in parts:  # one greedy pass of the original serves both parts
        prompts = _prompts(ids, args)
        reference = [greedy_tokens(models["original"], p, args.new_tokens) for p in prompts]
        if "agreement" in parts:
            result["greedy_agreement"] = _agreement(models, prompts, reference, args)
        if "noise" in parts:
            result["greedy_agreement_noise_floor"] = _noise_floor(models["original"], prompts, reference, args)
    return result


def targets(result: dict[str, Any]) -> dict[str, Any]:
    """The targets, each with the measured value and hit / miss."""
    out: dict[str, Any] = {}
    ppl = result.get("perplexity", {})
    ctx = "2048" if "2048" in ppl.get("original", {}) else next(iter(ppl.get("original", {"": 0})))
    for name, limit in (("hybrid_after", 1.15), ("pure_after", 1.5)):
        if name in ppl and "original" in ppl:
            ratio = ppl[name][ctx]["ppl"] / ppl["original"][ctx]["ppl"]
            out[f"{name}_ppl_ratio_at_{ctx}"] = {"value": ratio, "target": f"<= {limit}", "hit": ratio <= limit}
    if "decode" in result:
        rows = result["decode"]["hybrid_liquid"]
        keys = [k for k in rows if "_again" not in k]
        ratio = rows[keys[-1]]["ms_per_token"] / rows[keys[0]]["ms_per_token"]
        out[f"decode_time_{keys[-1]}_over_{keys[0]}"] = {"value": ratio, "target": "<= 1.1", "hit": ratio <= 1.1}
        sizes = {rows[k]["state_bytes"] for k in rows}
        out["decode_state_constant"] = {"value": sorted(sizes), "target": "one size", "hit": len(sizes) == 1}
    if "greedy_agreement" in result and "hybrid_after" in result["greedy_agreement"]:
        share = result["greedy_agreement"]["hybrid_after"]["mean"]
        out["hybrid_greedy_agreement"] = {"value": share, "target": ">= 0.5", "hit": share >= 0.5}
        noise = result.get("greedy_agreement_noise_floor", {}).get("variants", {})
        if noise:  # context, not a target: what the same metric gives the original itself under rounding changes
            out["hybrid_greedy_agreement"]["original_vs_itself"] = {k: v["mean"] for k, v in noise.items()}
    return out


def _decode(original: Any, hybrid: Any, ids: torch.Tensor, args: argparse.Namespace) -> dict[str, Any]:
    lengths = [int(c) for c in args.decode_contexts.split(",")]
    out: dict[str, Any] = {"original_kv": {}, "hybrid_liquid": {}}
    for length in lengths + [lengths[0]]:  # the first length again at the end: a drift check
        key = str(length) if str(length) not in out["hybrid_liquid"] else f"{length}_again"
        out["hybrid_liquid"][key] = decode_timing(hybrid, _liquid_cache(hybrid, ids[:256], length), length, args.steps)
        cache = _kv_cache(original, length)
        out["original_kv"][key] = decode_timing(original, cache, length, args.steps)
        del cache
        print("decode", key, out["hybrid_liquid"][key], out["original_kv"][key], flush=True)
    return out


def _prompts(ids: torch.Tensor, args: argparse.Namespace) -> list[torch.Tensor]:
    """The ``prompts`` held-out prompts of ``prompt_len`` tokens, evenly spaced over the held-out text."""
    stride = (len(ids) - args.prompt_len) // args.prompts
    return [ids[i * stride : i * stride + args.prompt_len] for i in range(args.prompts)]


def agreement_shares(model: Any, prompts: list[torch.Tensor], reference: list[list[int]], new_tokens: int) -> dict:
    """Share of ``model``'s first ``new_tokens`` greedy tokens equal to ``reference``'s, per prompt and mean."""
    shares = []
    for p, ref in zip(prompts, reference, strict=True):
        got = greedy_tokens(model, p, new_tokens)
        shares.append(sum(a == b for a, b in zip(got, ref, strict=False)) / new_tokens)
    return {"mean": sum(shares) / len(shares), "per_prompt": shares}


def _agreement(
    models: dict[str, Any], prompts: list[torch.Tensor], reference: list[list[int]], args: argparse.Namespace
) -> dict[str, Any]:
    out: dict[str, Any] = {"prompts": args.prompts, "prompt_tokens": args.prompt_len, "new_tokens": args.new_tokens}
    for name in DIR_OPTION:
        if name in models:
            out[name] = agreement_shares(models[name], prompts, reference, args.new_tokens)
            print("agreement", name, out[name]["mean"], flush=True)
    return out


def _variants(original: Any) -> Iterator[tuple[str, Any]]:
    """Copies of the original that compute the same function up to rounding (no quality change intended),
    made one at a time so that only one copy is alive beside the original."""
    import copy

    yield "original_bfloat16", copy.deepcopy(original).to(torch.bfloat16)
    yield "original_float64", copy.deepcopy(original).to(torch.float64)
    eager = copy.deepcopy(original)
    eager.set_attn_implementation("eager")
    yield "original_eager_attention", eager


@torch.no_grad()
def _path_logits(model: Any, prompt: torch.Tensor, ref: list[int]) -> tuple[torch.Tensor, float]:
    """``([len(ref), vocab] fp32 logits predicting each token of ref, summed NLL of the prompt's own tokens)``:
    one teacher-forced forward over prompt + ref (the prompt is held-out text, so its NLL is a perplexity)."""
    seq = torch.cat([prompt, torch.tensor(ref)])[None]
    logits = model(input_ids=seq, use_cache=False).logits[0].float()
    nll = torch.nn.functional.cross_entropy(logits[: len(prompt) - 1], prompt[1:], reduction="sum").item()
    return logits[len(prompt) - 1 : -1], nll


def _top1_share(logits: torch.Tensor, ref: list[int]) -> float:
    """Share of the positions where ``logits`` (``[len(ref), vocab]``) put ``ref``'s token first."""
    return (logits.argmax(-1) == torch.tensor(ref)).float().mean().item()


def _noise_floor(
    original: Any, prompts: list[torch.Tensor], reference: list[list[int]], args: argparse.Namespace
) -> dict[str, Any]:
    """Greedy agreement of the original with itself under rounding-level changes (dtype, attention kernel),
    on the benchmark's prompts — how much of the metric a model of the same quality already loses — with each
    variant's teacher-forced top-1 agreement on the original's greedy path (the per-token figure behind it),
    and the original's top-1/top-2 margins along that path (near-ties flip on any small perturbation)."""
    scored = [_path_logits(original, p, ref) for p, ref in zip(prompts, reference, strict=True)]
    paths, text_tokens = [lg for lg, _ in scored], sum(len(p) - 1 for p in prompts)
    ppl = math.exp(sum(nll for _, nll in scored) / text_tokens)
    own = [_top1_share(lg, ref) for lg, ref in zip(paths, reference, strict=True)]
    out: dict[str, Any] = {
        "reference": "original (float32, sdpa), as in greedy_agreement",
        # teacher-forced (one full forward) vs generate (KV-cache decode): rounding can flip the original's own ties
        "reference_top1_on_own_greedy_path": sum(own) / len(own),
        "reference_ppl_on_prompts": {"ppl": ppl, "tokens": text_tokens},
        "variants": {},
    }
    for name, model in _variants(original):
        row = agreement_shares(model, prompts, reference, args.new_tokens)
        hits, nll = [], 0.0
        for p, ref in zip(prompts, reference, strict=True):
            logits, part = _path_logits(model, p, ref)
            hits.append(_top1_share(logits, ref))
            nll += part
        row["top1_on_greedy_path"] = sum(hits) / len(hits)
        row["ppl_ratio_on_prompts"] = math.exp(nll / text_tokens) / ppl  # same held-out tokens as the reference's
        out["variants"][name] = row
        print("noise floor", name, {k: v for k, v in row.items() if k != "per_prompt"}, flush=True)
        del model
    logits = torch.cat(paths)
    probs, top = logits.softmax(-1).topk(2, -1).values, logits.topk(2, -1).values
    prob_gap, logit_gap = (probs[:, 0] - probs[:, 1]).tolist(), (top[:, 0] - top[:, 1]).tolist()
    out["margins_on_greedy_path"] = {
        "positions": len(prob_gap),
        "share_prob_margin_below_0.1": sum(m < 0.1 for m in prob_gap) / len(prob_gap),
        "share_prob_margin_below_0.05": sum(m < 0.05 for m in prob_gap) / len(prob_gap),
        "median_prob_margin": statistics.median(prob_gap),
        "share_logit_margin_below_0.1": sum(m < 0.1 for m in logit_gap) / len(logit_gap),
        "median_logit_margin": statistics.median(logit_gap),
    }
    print("margins", out["margins_on_greedy_path"], flush=True)
    return out


def plot(result: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(15, 4))
    names = list(result["perplexity"])
    ctx = sorted({c for name in names for c in result["perplexity"][name]}, key=int)
    for i, name in enumerate(names):
        rows = result["perplexity"][name]
        width = 0.8 / len(names)
        xs = [ctx.index(c) + (i - len(names) / 2 + 0.5) * width for c in rows]
        axes[0].bar(xs, [rows[c]["ppl"] for c in rows], width=width, label=name)
    axes[0].set_xticks(range(len(ctx)), ctx)
    axes[0].set(yscale="log", xlabel="context (tokens)", ylabel="held-out perplexity", title="perplexity")
    axes[0].legend(fontsize=7)
    if "decode" in result:
        for name, rows in result["decode"].items():
            keys = [k for k in rows if "_again" not in k]
            xs = [int(k) for k in keys]
            axes[1].plot(xs, [rows[k]["ms_per_token"] for k in keys], marker="o", label=name)
            axes[2].plot(xs, [rows[k]["state_bytes"] / 2**20 for k in keys], marker="o", label=name)
        axes[1].set(xscale="log", xlabel="context", ylabel="ms / token", title="decode time per token")
        axes[2].set(xscale="log", yscale="log", xlabel="context", ylabel="MiB", title="decode state")
        axes[1].legend(fontsize=7)
        axes[2].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The options of ``python -m benchmarks hf-quality``."""
    p.add_argument("--hybrid", help="DIR of the linearized hybrid (window 64)")
    p.add_argument("--pure", help="DIR of the linearized pure liquid model (window 0, no sinks)")
    p.add_argument("--window0-sinks", help="DIR of a linearized window-0 model WITH sink keys (its own row, not pure)")
    p.add_argument("--wide-hybrid", help="DIR of a hybrid linearized at a window > 64 (its own row, not a target)")
    p.add_argument("--contexts", default="512,2048,8192")
    p.add_argument("--max-eval-tokens", type=int, default=8192, help="tokens scored per context and model")
    p.add_argument("--decode-contexts", default="1024,4096,16384,32768")
    p.add_argument("--steps", type=int, default=16, help="timed decode steps per context")
    p.add_argument("--prompts", type=int, default=20)
    p.add_argument("--prompt-len", type=int, default=192)
    p.add_argument("--new-tokens", type=int, default=32)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--weights", default="fp32", choices=("fp32", "bf16", "int8"),
                   help="how the linearized models' base weights are held (liquid_memory.hf.weights)")  # fmt: skip
    p.add_argument("--machine", default="shared 2-core CPU; ratios are same-run", help="recorded in the JSON")
    p.add_argument("--models", default=",".join(MODELS), help=f"subset of {','.join(MODELS)}")
    p.add_argument("--parts", default=",".join(PARTS), help=f"subset of {','.join(PARTS)}")
    p.add_argument("--tag", help="write the partial result hf_smollm2.TAG.json (combine them with --combine)")
    p.add_argument(
        "--combine", action="store_true",
        help="merge OUT_DIR/hf_smollm2.*.json into hf_smollm2.json in file-name order (a later part wins; "
        "each replaced figure is printed)",
    )  # fmt: skip
    p.add_argument("--out-dir", default="bench_results")


def run(args: argparse.Namespace) -> int:
    """Measure (or ``--combine`` the parts), write ``hf_smollm2.json`` + ``.png`` (or the part ``--tag``), print."""
    out = Path(args.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    if args.combine:
        files = sorted(out.glob("hf_smollm2.*.json"))  # file-name order: name a re-measurement to sort later
        result, replaced = combine_parts([(f.name, json.loads(f.read_text(encoding="utf-8"))) for f in files])
        for line in replaced:
            print("combine:", line, flush=True)
    else:
        result = measure(args)
    if args.tag:
        (out / f"hf_smollm2.{args.tag}.json").write_text(json.dumps(result, indent=1) + "\n", encoding="utf-8")
        return 0
    result["targets"] = targets(result)
    (out / "hf_smollm2.json").write_text(json.dumps(result, indent=1) + "\n", encoding="utf-8")
    plot(result, out / "hf_smollm2.png")
    print(summary_table(result))
    print(json.dumps(result["targets"], indent=1))
    return 0


def summary_table(result: dict[str, Any]) -> str:
    """Held-out perplexity per model and context, greedy agreement, and decode ms/token per context."""
    agreement = result.get("greedy_agreement", {})
    rows = [
        {"model": name, **{f"ppl@{c}": v["ppl"] for c, v in by_ctx.items()},
         "greedy agreement": agreement.get(name, {}).get("mean")}
        for name, by_ctx in result.get("perplexity", {}).items()
    ]  # fmt: skip
    for name, by_ctx in result.get("decode", {}).items():
        rows.append({"model": f"decode {name}", **{f"ms/token@{c}": v["ms_per_token"] for c, v in by_ctx.items()}})
    return format_table(rows)
