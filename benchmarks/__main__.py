"""``python -m benchmarks <name> ...``: one command line for every research benchmark (run from a checkout).

Each benchmark module contributes its options (``add_arguments``) and its entry point (``run``); the full command
line is recorded as ``args.command_line`` for the benchmarks that write it into their results. A typed error of the
product prints one line and exits with status 2, never a traceback.
"""

from __future__ import annotations

import argparse
import shlex
import sys
from collections.abc import Callable
from dataclasses import dataclass

from benchmarks.hf import int8_gemv as hf_int8_gemv
from benchmarks.hf import quality as hf_quality
from benchmarks.hf import retrieval as hf_retrieval
from benchmarks.hf import serve as hf_serve
from benchmarks.licensing import aoti_vs_cpp, licence_recheck, release_first_call
from benchmarks.lm import comparison as lm_comparison
from benchmarks.mqar import command as mqar
from benchmarks.proxy import extraction as proxy_extraction
from benchmarks.proxy import memory as proxy_memory
from benchmarks.proxy import overhead as proxy_overhead


@dataclass(frozen=True)
class Benchmark:
    help: str
    add_arguments: Callable[[argparse.ArgumentParser], None]
    run: Callable[[argparse.Namespace], int]
    description: str | None = None


BENCHMARKS: dict[str, Benchmark] = {
    "mqar": Benchmark(mqar.SWEEP_HELP, mqar.add_sweep_arguments, mqar.run_sweep_command, mqar.SWEEP_DESCRIPTION),
    "mqar-report": Benchmark(mqar.REPORT_HELP, mqar.add_report_arguments, mqar.run_report_command),
    "lm": Benchmark(
        "train liquid / liquidnet / attention LiquidLMs on the same tokens; quality and speed table",
        lm_comparison.add_arguments,
        lm_comparison.run,
        lm_comparison.__doc__,
    ),  # fmt: skip
    "hf-quality": Benchmark(
        "a linearized SmolLM2 against the original: perplexity, decode speed and state, greedy agreement",
        hf_quality.add_arguments,
        hf_quality.run,
        hf_quality.__doc__,
    ),  # fmt: skip
    "hf-retrieval": Benchmark(
        "long-context retrieval of SmolLM2 variants: pass key, needle in the essays, multi-key",
        hf_retrieval.add_arguments,
        hf_retrieval.run,
        hf_retrieval.__doc__,
    ),  # fmt: skip
    "hf-serve": Benchmark(
        "serving speed of SmolLM2 (original, hybrid, llama.cpp): prefill, decode by context, batched decode, memory",
        hf_serve.add_arguments,
        hf_serve.run,
        hf_serve.__doc__,
    ),  # fmt: skip
    "hf-int8-gemv": Benchmark(
        "the int8 weight-only matmul of serving on SmolLM2's shapes: our C++ op against torch's int8 and fp32",
        hf_int8_gemv.add_arguments,
        hf_int8_gemv.run,
        hf_int8_gemv.__doc__,
    ),  # fmt: skip
    "proxy-extraction": Benchmark(
        "the proxy's extractors: answer-fact recall vs compression, and latency, on long real documents",
        proxy_extraction.add_arguments,
        proxy_extraction.run,
        proxy_extraction.__doc__,
    ),  # fmt: skip
    "proxy-memory": Benchmark(
        "peak memory of the proxy's local reader (SmolLM2, original and linearized) by document length",
        proxy_memory.add_arguments,
        proxy_memory.run,
        proxy_memory.__doc__,
    ),  # fmt: skip
    "proxy-overhead": Benchmark(
        "time a request spends in the proxy itself, excluding extraction and synthesis",
        proxy_overhead.add_arguments,
        proxy_overhead.run,
        proxy_overhead.__doc__,
    ),  # fmt: skip
    "licensing-overhead": Benchmark(
        "costs of the licensed path (licence check, verify, decrypt, AOTI load) and aoti vs cpp scan speed",
        aoti_vs_cpp.add_arguments,
        aoti_vs_cpp.run,
        aoti_vs_cpp.__doc__,
    ),  # fmt: skip
    "licence-recheck": Benchmark(
        "per-call cost of the licence re-check under torch.compile",
        licence_recheck.add_arguments,
        licence_recheck.run,
        licence_recheck.__doc__,
    ),  # fmt: skip
    "release-first-call": Benchmark(
        "first-call cost of a release install (verify every file, decrypt and load the kernel library)",
        release_first_call.add_arguments,
        release_first_call.run,
        release_first_call.__doc__,
    ),  # fmt: skip
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="benchmark", required=True, metavar="BENCHMARK")
    for name, bench in BENCHMARKS.items():
        child = sub.add_parser(name, help=bench.help, description=bench.description or bench.help,
                               formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
        bench.add_arguments(child)
    return parser


def main(argv: list[str] | None = None) -> int:
    from liquid_memory.errors import LiquidMemoryError

    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    args.command_line = "python -m benchmarks " + shlex.join(argv)
    try:
        return int(BENCHMARKS[args.benchmark].run(args) or 0)
    except LiquidMemoryError as err:
        print(f"python -m benchmarks {args.benchmark}: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
