"""The training runs behind ``lm bench``: one per (model, seed), optionally reused, and their seed summary.

Why seeds: at the bench's scale (300 steps of 2,048 tokens) a different random init alone moved one model's
held-out perplexity by ~10 %, more than the differences the bench is asked to resolve; a single run cannot tell
a 1.10× target from noise. Why reuse: each run costs 12–18 CPU-minutes here, so adding a seed or a model must not
retrain the runs that already exist — but only when the finished run provably used the same settings.
"""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path
from typing import Any

from liquid_memory.lm.checkpoint import load_checkpoint
from liquid_memory.lm.train import CHECKPOINT_NAME, LIQUID_FLAGS, LOG_NAME, TrainArgs, run_training
from liquid_memory.models import LiquidLM, LiquidLMConfig

# TrainArgs fields that say where/how a run was displayed, not what it trained on.
_PRESENTATION_FIELDS = ("out_dir", "progress", "plot", "tokenizer", "resume", "stop_at")
# TrainArgs fields that only build the model's LiquidMemory options: compared through the logged model config
# (its liquid_kwargs / conv_qkv), which says what the run computed. Comparing the flags themselves would fill a
# flag missing from an older log with today's default — and the defaults of output_gate / out_norm_eps changed on
# 2026-11-30 (to the recommended setting), so every run logged before would have looked different and been retrained.
_MODEL_OPTION_FIELDS = (*LIQUID_FLAGS, "conv_qkv")


def _comparable(train_args: dict[str, Any]) -> dict[str, Any]:
    """Training arguments that decide the result, beside the model config; a field added after the run was
    logged takes its default (a new option's default keeps earlier behaviour, which is how options are added)."""
    full = {**dataclasses.asdict(TrainArgs()), **train_args}
    return {k: v for k, v in full.items() if k not in _PRESENTATION_FIELDS + _MODEL_OPTION_FIELDS}


def _same_config(logged: dict[str, Any] | None, config: LiquidLMConfig) -> bool:
    try:
        return logged is not None and LiquidLMConfig.from_dict(logged) == config
    except (TypeError, ValueError):  # ConfigError is a ValueError: written by another version
        return False


def finished_run(args: TrainArgs, config: LiquidLMConfig) -> dict[str, Any] | None:
    """The logged summary of a finished run in ``args.out_dir`` trained exactly as asked, else ``None``."""
    folder = Path(args.out_dir)
    log_path, ckpt_path = folder / LOG_NAME, folder / CHECKPOINT_NAME
    if not (log_path.is_file() and ckpt_path.is_file()):
        return None
    logged = json.loads(log_path.read_text(encoding="utf-8"))
    same = (
        _comparable(logged.get("train_args", {})) == _comparable(dataclasses.asdict(args))
        and _same_config(logged.get("model_config"), config)
        and logged.get("steps_done") == args.steps
        and logged.get("heldout_loss") is not None
    )
    return logged if same else None


def train_or_reuse(
    args: TrainArgs, config: LiquidLMConfig, *, reuse: bool, need_model: bool = True
) -> tuple[dict[str, Any], LiquidLM | None, dict]:
    """Train one bench run, or (``reuse``) take the finished identical run; returns (summary, model, log).

    A reused run's checkpoint is read only when ``need_model`` (its model is otherwise ``None``)."""
    logged = finished_run(args, config) if reuse else None
    if logged is None:
        summary = run_training(args)
        model, log = summary.pop("model"), summary.pop("log")
        return {**summary, "reused": False}, model, log
    model = load_checkpoint(Path(args.out_dir) / CHECKPOINT_NAME, expected=config).build_model() if need_model else None
    log = {"steps": logged.pop("steps"), "evals": logged.pop("evals")}
    print(f"lm bench: reusing the finished run in {args.out_dir} (same configuration and training arguments)")
    return {**logged, "reused": True}, model, log


def seed_summary(seeds: list[dict[str, Any]]) -> dict[str, Any]:
    """Held-out figures over seeds: mean loss, its perplexity exp(mean loss), and the per-seed spread."""
    losses = [s["heldout_loss"] for s in seeds]
    ppls = [s["heldout_ppl"] for s in seeds]
    mean = sum(losses) / len(losses)
    std = math.sqrt(sum((x - mean) ** 2 for x in losses) / (len(losses) - 1)) if len(losses) > 1 else None
    return {
        "heldout_loss": mean,
        "heldout_loss_std": std,
        "heldout_ppl": math.exp(mean),
        "heldout_ppl_min": min(ppls),
        "heldout_ppl_max": max(ppls),
        "train_seconds": sum(s["train_seconds"] for s in seeds) / len(seeds),
    }


def paired_ratio(liquid: dict[str, Any], attention: dict[str, Any]) -> dict[str, Any] | None:
    """Liquid's perplexity over attention's on the seeds both ran (same init seed, same batches per seed):
    exp(mean loss difference) overall, and the ratio of every seed; ``None`` when no seed is shared."""
    theirs = {s["seed"]: s["heldout_loss"] for s in attention.get("seeds", [])}
    shared = [s for s in liquid.get("seeds", []) if s["seed"] in theirs]
    if not shared:
        return None
    gaps = [s["heldout_loss"] - theirs[s["seed"]] for s in shared]
    return {
        "value": math.exp(sum(gaps) / len(gaps)),
        "seeds": [s["seed"] for s in shared],
        "per_seed": [{"seed": s["seed"], "ratio": math.exp(gap)} for s, gap in zip(shared, gaps, strict=True)],
    }
