"""``liquid-memory bench``: the layer table on this machine (quick by default, ``--full`` for 1K–128K), or the
mixer-only ``liquid_scan`` kernels (``--mixer``). Needs only the base install; the PNG needs the ``bench`` extra."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

HELP = "benchmark LiquidMemory against nn.MultiheadAttention and an SDPA layer"
# the default table finishes in a few minutes on a 2-core CPU; --full is the whole sweep (tens of minutes)
QUICK_LENGTHS = "1024,2048,4096"
FULL_LENGTHS = "1024,2048,4096,8192,16384,32768,65536,131072"


def build_parser() -> argparse.ArgumentParser:
    bench = argparse.ArgumentParser(
        prog="liquid-memory bench",
        description="Prints the layer table (forward time and memory, forward+backward, decode per token), writes "
        "JSON and a PNG plot. --mixer runs the liquid_scan kernel benchmark instead.",
    )
    bench.add_argument("--embed-dim", type=int, default=1024)
    bench.add_argument("--heads", type=int, default=16)
    bench.add_argument("--batch", type=int, default=1)
    bench.add_argument(
        "--seq-lens",
        default=None,
        help=f"comma-separated sequence lengths (layer default {QUICK_LENGTHS}, with --full {FULL_LENGTHS}; "
        "mixer 2048,8192)",
    )
    bench.add_argument("--full", action="store_true", help=f"the full sweep {FULL_LENGTHS} (tens of minutes)")
    bench.add_argument("--dtype", choices=["float32", "bfloat16"], default="float32")
    bench.add_argument("--device", default="cpu")
    bench.add_argument("--out-dir", default="bench_results", help="where the JSON and PNG go")
    bench.add_argument("--time-budget", type=float, default=90.0, help="seconds a single measurement may take")
    bench.add_argument("--memory-budget-gb", type=float, default=12.0, help="skip peers predicted to need more")
    bench.add_argument("--no-backward", action="store_true", help="skip the forward+backward columns")
    bench.add_argument("--no-decode", action="store_true", help="skip the decode columns")
    bench.add_argument("--backend", default=None, help="force a liquid_scan backend (default: LM_BACKEND or cpp)")
    bench.add_argument("--decay-rank", type=int, default=None, help="LiquidMemory decay_rank (default: full)")
    bench.add_argument(
        "--short-conv", type=int, default=None,
        help="LiquidMemory short_conv kernel (default: the module's, 4; 0: the recurrence without it)",
    )  # fmt: skip
    bench.add_argument("--extras", action="store_true", help="also bandwidth/decode, decay_rank sweep, compile")
    bench.add_argument(
        "--targets", action="store_true",
        help="also print the project's performance targets against this run (always in the JSON)",
    )  # fmt: skip
    bench.add_argument(
        "--mixer", action="store_true",
        help="run the mixer-only liquid_scan benchmark (backends vs a same-run SGEMM rate); further options "
        "(--backends, --no-backward, --threads, --budget-s, ...) are passed on to it",
    )  # fmt: skip
    return bench


def main(argv: list[str]) -> int:
    from liquid_memory.errors import LiquidMemoryError

    args, extra = build_parser().parse_known_args(argv)
    try:
        if args.mixer:
            return _run_mixer(args, extra)
        if extra:
            print(f"liquid-memory bench: unrecognised arguments: {' '.join(extra)}", file=sys.stderr)
            return 2
        return _run_layer(args)
    except LiquidMemoryError as err:
        print(f"liquid-memory bench: {err}", file=sys.stderr)
        return 1


def _run_mixer(args: argparse.Namespace, extra: list[str]) -> int:
    from liquid_memory.bench.mixer import main as mixer_main

    argv = ["--embed-dim", str(args.embed_dim), "--num-heads", str(args.heads), "--batch-size", str(args.batch)]
    argv += ["--dtype", args.dtype, "--json", str(Path(args.out_dir) / f"mixer_{args.dtype}.json")]
    if args.seq_lens:
        argv += ["--seq-lengths", *args.seq_lens.split(",")]
    return mixer_main(argv + extra)


def _run_layer(args: argparse.Namespace) -> int:
    from liquid_memory.bench.run import run_benchmark

    text = args.seq_lens or (FULL_LENGTHS if args.full else QUICK_LENGTHS)
    lengths = [int(part) for part in text.split(",") if part.strip()]
    run_benchmark(
        args.embed_dim, args.heads, args.batch, lengths, args.dtype, args.device,
        out_dir=args.out_dir, time_budget_s=args.time_budget, memory_budget_gb=args.memory_budget_gb,
        backward=not args.no_backward, decode=not args.no_decode, backend=args.backend,
        decay_rank=args.decay_rank, extras=args.extras, show_targets=args.targets,
        **({} if args.short_conv is None else {"short_conv": args.short_conv}),
    )  # fmt: skip
    return 0
