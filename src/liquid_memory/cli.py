"""``liquid-memory``: the customer CLI — ``bench``, ``verify``, ``license``, ``lm``, ``quality``, ``linearize``."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from liquid_memory import cli_quality
from liquid_memory.cli_hf import add_linearize, run_bench_hf, run_linearize
from liquid_memory.cli_licensing import add_subcommands, run
from liquid_memory.cli_lm import add_lm_subcommand, run_lm

DEFAULT_LENGTHS = "1024,2048,4096,8192,16384,32768,65536,131072"


def _add_bench(sub: argparse._SubParsersAction) -> None:
    bench = sub.add_parser(
        "bench",
        help="benchmark LiquidMemory against nn.MultiheadAttention and an SDPA layer",
        description="Prints the layer table (forward time and memory, forward+backward, decode per token), "
        "writes JSON and a PNG plot. --mixer runs the liquid_scan kernel benchmark instead.",
    )
    bench.add_argument("--embed-dim", type=int, default=1024)
    bench.add_argument("--heads", type=int, default=16)
    bench.add_argument("--batch", type=int, default=1)
    bench.add_argument(
        "--seq-lens",
        default=None,
        help=f"comma-separated sequence lengths (layer default {DEFAULT_LENGTHS}; mixer 2048,8192)",
    )
    bench.add_argument("--dtype", choices=["float32", "bfloat16"], default="float32")
    bench.add_argument("--device", default="cpu")
    bench.add_argument("--out-dir", default="bench_results", help="where the JSON and PNG go")
    bench.add_argument("--time-budget", type=float, default=90.0, help="seconds a single measurement may take")
    bench.add_argument("--memory-budget-gb", type=float, default=12.0, help="skip peers predicted to need more")
    bench.add_argument("--no-backward", action="store_true", help="skip the forward+backward columns")
    bench.add_argument("--no-decode", action="store_true", help="skip the decode columns")
    bench.add_argument("--backend", default=None, help="force a liquid_scan backend (default: LM_BACKEND or cpp)")
    bench.add_argument("--decay-rank", type=int, default=None, help="LiquidMemory decay_rank (default: full)")
    bench.add_argument("--short-conv", type=int, default=4, help="LiquidMemory short_conv kernel (default 4; 0: off)")
    bench.add_argument("--extras", action="store_true", help="also bandwidth/decode, decay_rank sweep, compile")
    bench.add_argument(
        "--mixer", action="store_true",
        help="run the mixer-only liquid_scan benchmark (backends vs a same-run SGEMM rate); further options "
        "(--backends, --no-backward, --threads, --budget-s, ...) are passed on to it",
    )  # fmt: skip
    bench.add_argument("--hf", action="store_true", help="Hugging Face benchmark (see liquid-memory bench --hf --help)")


def _run_bench(args: argparse.Namespace, extra: list[str]) -> int:
    if args.mixer:
        from liquid_memory.benchmarks.mixer import main as mixer_main

        argv = ["--embed-dim", str(args.embed_dim), "--num-heads", str(args.heads), "--batch-size", str(args.batch)]
        argv += ["--dtype", args.dtype, "--json", str(Path(args.out_dir) / f"mixer_{args.dtype}.json")]
        if args.seq_lens:
            argv += ["--seq-lengths", *args.seq_lens.split(",")]
        return mixer_main(argv + extra)
    if extra:
        print(f"liquid-memory bench: unrecognised arguments: {' '.join(extra)}", file=sys.stderr)
        return 2
    from liquid_memory.benchmark import run_benchmark

    lengths = [int(part) for part in (args.seq_lens or DEFAULT_LENGTHS).split(",") if part.strip()]
    run_benchmark(
        args.embed_dim, args.heads, args.batch, lengths, args.dtype, args.device,
        out_dir=args.out_dir, time_budget_s=args.time_budget, memory_budget_gb=args.memory_budget_gb,
        backward=not args.no_backward, decode=not args.no_decode, backend=args.backend,
        decay_rank=args.decay_rank, extras=args.extras, short_conv=args.short_conv,
    )  # fmt: skip
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["bench"] and "--hf" in argv:  # issue 7: its own options and --help (cli_hf.py)
        return run_bench_hf([a for a in argv[1:] if a != "--hf"])
    parser = argparse.ArgumentParser(prog="liquid-memory", description="Liquid Memory customer tools.")
    sub = parser.add_subparsers(dest="command", required=True)
    _add_bench(sub)
    add_subcommands(sub)
    add_lm_subcommand(sub)
    cli_quality.add_subcommands(sub)
    add_linearize(sub)
    args, extra = parser.parse_known_args(argv)
    if args.command == "bench":
        return _run_bench(args, extra)
    if extra:
        parser.error(f"unrecognised arguments: {' '.join(extra)}")
    if args.command == "lm":
        return run_lm(args)
    if args.command == "quality":
        return cli_quality.run(args, argv)
    if args.command == "linearize":
        return run_linearize(args)
    return run(args)


if __name__ == "__main__":
    sys.exit(main())
