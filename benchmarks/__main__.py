"""``python -m benchmarks NAME ...``: the research benchmarks, run from a checkout."""

import sys

from benchmarks.hf import retrieval

COMMANDS = {"hf-retrieval": retrieval.run}

if __name__ == "__main__":
    if len(sys.argv) < 2 or sys.argv[1] not in COMMANDS:
        raise SystemExit(f"usage: python -m benchmarks {{{','.join(COMMANDS)}}} ...")
    sys.exit(COMMANDS[sys.argv[1]](sys.argv[2:]))
