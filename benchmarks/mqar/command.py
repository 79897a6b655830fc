"""``python -m benchmarks mqar`` (train every model on MQAR settings) and ``mqar-report`` (merge results files)."""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path

DEFAULT_MODELS = "attention,liquid,liquid-conv,liquid-r16,liquid-r64,liquid-coupled,liquid-no-norm,liquidnet"


SWEEP_HELP = "train every model on MQAR settings; JSON per run, table and accuracy-vs-state-size PNG"
SWEEP_DESCRIPTION = (
    "Zoology's multi-query associative recall at CPU scale. Every model of a setting trains on the same seeded "
    "batches with the same optimizer; held-out accuracy is recorded every --eval-every steps, and each run stops at "
    "--stop-accuracy or --max-steps. Finished runs are appended to --json at once; a re-run skips them."
)
REPORT_HELP = "merge MQAR results files: table, target verdict, combined JSON+PNG"


def add_sweep_arguments(mqar: argparse.ArgumentParser) -> None:
    """The options of ``python -m benchmarks mqar``."""
    mqar.add_argument(
        "--preset", choices=["target", "small", "grid", "custom"], default="target",
        help="target: T=256, 16 pairs, d_model 128; small: T=64, 4 pairs, d_model 64; "
        "grid: T 64-512, pairs 4-64, d_model 64-256",
    )  # fmt: skip
    mqar.add_argument(
        "--settings", default=None,
        help="custom settings 'T:pairs:d_model,...' (e.g. 64:4:64,128:8:64); implies --preset custom",
    )  # fmt: skip
    mqar.add_argument("--models", default=DEFAULT_MODELS, help="comma-separated model names (see --list-models)")
    mqar.add_argument("--list-models", action="store_true", help="print the model names and exit")
    mqar.add_argument("--layers", type=int, default=2)
    mqar.add_argument("--heads", type=int, default=2)
    mqar.add_argument(
        "--vocab", type=int, default=1024,
        help="vocabulary, half keys and half values (default 1024: CPU scale; Zoology's paper uses 8192)",
    )  # fmt: skip
    mqar.add_argument("--batch-size", type=int, default=32)
    mqar.add_argument("--max-steps", type=int, default=2000)
    mqar.add_argument(
        "--lr", type=float, default=3e-3,
        help="AdamW learning rate, constant after warmup (Zoology tunes it per model; here attention learns "
        "fastest at 3e-3 and LiquidMemory at 1e-3 — see benchmarks/results/mqar/README.md)",
    )  # fmt: skip
    mqar.add_argument("--warmup-steps", type=int, default=100)
    mqar.add_argument("--eval-every", type=int, default=50)
    mqar.add_argument("--eval-examples", type=int, default=256)
    mqar.add_argument("--stop-accuracy", type=float, default=0.95)
    mqar.add_argument("--seed", type=int, default=0)
    mqar.add_argument(
        "--data-seed", type=int, default=None,
        help="seed of the training batches and held-out sets (default: --seed); --seed then sets only the init",
    )  # fmt: skip
    mqar.add_argument(
        "--train-mix", default="",
        help="train on a mixture of settings 'T:pairs[:weight],...' (e.g. 64:4:2,128:8:1,256:16:1), as Zoology "
        "does; every batch holds batch_size·weight/Σweights examples of each (largest remainder); evaluation "
        "stays on the --settings/--preset setting. Default: train on that setting only",
    )  # fmt: skip
    mqar.add_argument("--time-budget", type=float, default=0.0, help="seconds per run (0 = none)")
    mqar.add_argument("--threads", type=int, default=1, help="torch threads per run (default 1: a shared CPU)")
    mqar.add_argument("--backend", default=None, help="liquid_scan backend of the liquid mixer")
    mqar.add_argument("--json", default="mqar_results/mqar.json", help="results file (appended, runs skipped)")
    mqar.add_argument("--png", default=None, help="plot path (default: beside --json)")


def add_report_arguments(report: argparse.ArgumentParser) -> None:
    """The options of ``python -m benchmarks mqar-report``."""
    report.add_argument("inputs", nargs="+", help="results JSON files written by `python -m benchmarks mqar`")
    report.add_argument("--json", default=None, help="write the merged, annotated JSON here")
    report.add_argument("--png", default=None, help="write the plot here")
    report.add_argument(
        "--seed-panels", default=None,
        help="setting label prefix whose seeds get one plot panel each (default: the target, T256-kv16-d128-L2)",
    )  # fmt: skip


def _settings(args: argparse.Namespace):
    from benchmarks.mqar.sweep import PRESETS, settings_from

    if args.settings:
        triples = []
        for item in args.settings.split(","):
            parts = item.strip().split(":")
            if len(parts) != 3 or not all(p.isdigit() for p in parts):
                raise ValueError(f"a setting is 'seq_len:pairs:d_model' (e.g. 256:16:128), got {item!r}")
            triples.append(tuple(int(p) for p in parts))
    else:
        triples = PRESETS[args.preset] if args.preset != "custom" else []
        if not triples:
            raise ValueError("--preset custom needs --settings")
    return settings_from(triples, n_layers=args.layers, n_heads=args.heads, vocab_size=args.vocab,
                         backend=args.backend)  # fmt: skip


def _run_sweep(args: argparse.Namespace) -> int:
    import torch

    from benchmarks.mqar.models import MODEL_SPECS, parse_models
    from benchmarks.mqar.report import report
    from benchmarks.mqar.sweep import run_sweep
    from benchmarks.mqar.train import TrainConfig

    if args.list_models:
        for spec in MODEL_SPECS.values():
            print(f"{spec.name:16s} {spec.note}")
        return 0
    specs = parse_models(args.models)
    settings = _settings(args)
    train_mix = ""
    if args.train_mix:
        from benchmarks.mqar.mix import mix_counts, mix_text, parse_mix

        for setting in settings:  # validate against every evaluated setting before any training
            mix = parse_mix(args.train_mix, setting.task)
            mix_counts([c.weight for c in mix], args.batch_size)
        train_mix = mix_text(mix)
    cfg = TrainConfig(
        batch_size=args.batch_size, max_steps=args.max_steps, lr=args.lr, warmup_steps=args.warmup_steps,
        eval_every=args.eval_every, eval_examples=args.eval_examples, stop_accuracy=args.stop_accuracy,
        seed=args.seed, data_seed=args.data_seed, time_budget_s=args.time_budget, train_mix=train_mix,
    )  # fmt: skip
    torch.set_num_threads(args.threads)
    json_path = Path(args.json)
    png = Path(args.png) if args.png else json_path.with_suffix(".png")
    env = f"OMP_NUM_THREADS={os.environ['OMP_NUM_THREADS']} " if "OMP_NUM_THREADS" in os.environ else ""
    command = env + args.command_line
    start = time.perf_counter()
    run_sweep(settings, specs, cfg, json_path, command, log=lambda m: print(m, flush=True))
    print(f"sweep finished in {time.perf_counter() - start:.0f}s; results in {json_path}\n")
    print(report([json_path], None, png))
    print(f"\nplot: {png}")
    return 0


def run_sweep_command(args: argparse.Namespace) -> int:
    """``python -m benchmarks mqar``; bad settings give one clear line and exit status 2."""
    return _clear_errors(lambda: _run_sweep(args))


def run_report_command(args: argparse.Namespace) -> int:
    """``python -m benchmarks mqar-report``; bad or missing files give one clear line and exit status 2."""
    from benchmarks.mqar.report import report

    def merge() -> int:
        panels = {"seed_panels": args.seed_panels} if args.seed_panels else {}
        print(report([Path(p) for p in args.inputs], Path(args.json) if args.json else None,
                     Path(args.png) if args.png else None, **panels))  # fmt: skip
        return 0

    return _clear_errors(merge)


def _clear_errors(job: Callable[[], int]) -> int:
    from liquid_memory.errors import LiquidMemoryError

    try:
        return job()
    except (ValueError, OSError, ImportError, LiquidMemoryError) as exc:
        print(f"python -m benchmarks: {exc}", file=sys.stderr)
        return 2
