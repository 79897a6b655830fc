"""Build the plaintext AOTInductor packages into a local cache folder (default ``.lm-build/artifacts``).

Usage: ``python tools/build_artifacts.py [--out DIR] [--variant float32:64 ...] [--isa avx2]``.
Each variant writes ``NAME`` (the stripped .pt2) and ``NAME.json`` (its build info). These plaintext
packages are build outputs — never commit them; ``lm-vendor release`` encrypts them into dist_public/.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

DEFAULT_VARIANTS = ["float32:64", "float32:128", "bfloat16:64", "bfloat16:128"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path(".lm-build/artifacts"))
    parser.add_argument("--variant", action="append", help="dtype:head_dim (repeatable); default: all four")
    parser.add_argument("--isa", default="avx2", choices=["avx2", "avx512"])
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args(argv)
    os.environ.setdefault("OMP_NUM_THREADS", str(args.threads))
    import torch

    torch.set_num_threads(args.threads)
    from liquid_memory_vendor.aoti_build import build

    args.out.mkdir(parents=True, exist_ok=True)
    for variant in args.variant or DEFAULT_VARIANTS:
        dtype, _, dim = variant.partition(":")
        built = build(dtype, int(dim), args.isa)
        (args.out / built.name).write_bytes(built.plaintext)
        (args.out / f"{built.name}.json").write_text(json.dumps(built.info, indent=2, sort_keys=True) + "\n")
        print(f"{built.name}: {built.info['plaintext_size']} bytes, export {built.info['export_seconds']} s, "
              f"compile {built.info['compile_seconds']} s", flush=True)  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
