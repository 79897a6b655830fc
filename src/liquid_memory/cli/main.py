"""``liquid-memory``: the customer CLI — ``bench``, ``verify``, ``license``, ``lm``, ``linearize``.

Each subcommand is a module of this package with its own parser (``liquid-memory <command> --help``) and imports
what it needs only when it runs: ``verify``, ``license`` and ``bench`` work on a base install, and a command
whose optional extra is missing says which one to install (``LM901``) instead of failing on an import.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable

from liquid_memory.cli import bench, licence, linearize, lm

COMMANDS: dict[str, tuple[str, Callable[[list[str]], int]]] = {
    "bench": (bench.HELP, bench.main),
    "verify": (licence.VERIFY_HELP, licence.verify_main),
    "license": (licence.LICENSE_HELP, licence.license_main),
    "lm": (lm.HELP, lm.main),
    "linearize": (linearize.HELP, linearize.main),
}


def _overview() -> argparse.ArgumentParser:
    """The top-level parser: lists the commands (``liquid-memory --help``) and rejects unknown ones."""
    parser = argparse.ArgumentParser(prog="liquid-memory", description="Liquid Memory customer tools.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, (text, _) in COMMANDS.items():
        sub.add_parser(name, help=text, add_help=False)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv and argv[0] in COMMANDS:
        return COMMANDS[argv[0]][1](argv[1:])
    _overview().parse_args(argv)  # --help, or a usage error (exit 2) for a missing or unknown command
    return 2
