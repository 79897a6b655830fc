"""``liquid-memory lm bench`` (being written)."""

from __future__ import annotations

import argparse


def add_bench_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out-dir", default="bench_results/lm")


def run_bench_cli(args: argparse.Namespace) -> int:
    raise NotImplementedError("lm bench is being written")
