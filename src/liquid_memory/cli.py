"""``liquid-memory``: the customer CLI (minimal version from the licensing branch; the lead owns it)."""

from __future__ import annotations

import argparse
import sys

from liquid_memory.cli_licensing import add_subcommands, run


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="liquid-memory", description="Liquid Memory customer tools.")
    sub = parser.add_subparsers(dest="command", required=True)
    add_subcommands(sub)
    args = parser.parse_args(argv)
    return run(args)


if __name__ == "__main__":
    sys.exit(main())
