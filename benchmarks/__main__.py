"""``python -m benchmarks <name> ...``: one command line for the research benchmarks (run from a checkout)."""

from __future__ import annotations

import argparse
import sys

from benchmarks.hf import serve as hf_serve

BENCHMARKS = {"hf-serve": (hf_serve.add_arguments, hf_serve.run, hf_serve.__doc__)}


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] not in BENCHMARKS:
        print(f"usage: python -m benchmarks {{{','.join(BENCHMARKS)}}} ...", file=sys.stderr)
        return 2
    add_arguments, run, doc = BENCHMARKS[argv[0]]
    parser = argparse.ArgumentParser(prog=f"python -m benchmarks {argv[0]}", description=doc)
    add_arguments(parser)
    return run(parser.parse_args(argv[1:]))


if __name__ == "__main__":
    raise SystemExit(main())
