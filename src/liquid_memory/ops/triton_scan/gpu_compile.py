"""Compile the Triton kernels for a real NVIDIA target without a GPU, and report their resource use.

The interpreter checks the kernels' arithmetic but not whether they compile, nor whether they fit a GPU's
shared memory and registers. Triton's NVIDIA toolchain (bundled ``ptxas``) needs no device, so this module
compiles every kernel down to a cubin for a given ``sm_XX`` and reads back the shared memory Triton
allocated and ``ptxas -v``'s registers and spills. Run it in a process without ``TRITON_INTERPRET=1``.

    python -m liquid_memory.ops.triton_scan.gpu_compile --dims 32 64 128 --archs 80 90 [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

# Per-block shared-memory limits (bytes) of common targets: opt-in maximum per thread block.
SHARED_LIMIT = {80: 166912, 86: 101376, 89: 101376, 90: 232448}


def _require_compiler_mode() -> None:
    """Triton decorates its own library functions (``tl.cumsum``'s combine, ...) at import time, so a process
    that imported it with ``TRITON_INTERPRET=1`` can never compile: run this in a separate process."""
    from triton import knobs

    if knobs.runtime.interpret:
        raise RuntimeError(
            "gpu_compile needs a process without TRITON_INTERPRET=1 (Triton was imported in interpreter mode); "
            "run `python -m liquid_memory.ops.triton_scan.gpu_compile` in a fresh process"
        )


def _specs(kernels, dim: int, chunk: int, dtype: str, bv: int) -> dict:
    """(kernel, signature, constexprs) for every kernel at head dim ``dim`` (dk = dv), as the launchers use them."""
    ptr, f32, i32 = f"*{dtype}", "*fp32", "i32"
    block = max(16, 1 << (dim - 1).bit_length())
    common = dict(K=dim, V=dim, BT=chunk, BK=block, BV=bv)
    fwd_sig = dict(q=ptr, k=ptr, v=ptr, g=f32, h0=f32, o=ptr, hs=f32, ht=f32, T=i32, NT=i32)
    bwd_sig = dict(q=ptr, k=ptr, v=ptr, g=f32, hs=f32, do=ptr, dht=f32, dq=f32, dk=f32, dv=f32, dh0=f32)
    dla_sig = dict(q=ptr, k=ptr, dq=f32, dk=f32, ht=f32, dht=f32, dla=f32, T=i32, NT=i32)
    step_sig = dict(q=ptr, k=ptr, v=ptr, la=f32, s=f32, o=ptr, s_out=f32)
    return {
        "chunk_cumsum": (
            kernels.chunk_cumsum_kernel,
            dict(la=f32, g=f32, T=i32, NT=i32),
            dict(K=dim, BT=chunk, BK=block),
        ),
        "chunk_fwd": (
            kernels.chunk_fwd_kernel,
            fwd_sig,
            dict(common, BC=16, HAS_H0=True, STORE_HS=True, SAFE=True),
        ),  # fmt: skip
        "chunk_bwd": (
            kernels.chunk_bwd_kernel,
            dict(bwd_sig, T=i32, NT=i32),
            dict(common, BC=16, HAS_DHT=True, SAFE=True),
        ),  # fmt: skip
        "dlog_a": (kernels.dlog_a_kernel, dla_sig, dict(common, HAS_DHT=True)),
        "step": (kernels.step_kernel, step_sig, dict(K=dim, V=dim, BK=block, BV=bv)),
    }


def _ptxas_usage(ptx: str, arch: int) -> dict:
    """Registers and spill bytes from the bundled ``ptxas -v``."""
    from triton.backends.nvidia.compiler import get_ptxas

    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp, "k.ptx")
        src.write_text(ptx)
        suffix = "a" if arch >= 90 else ""
        run = subprocess.run(
            [get_ptxas(arch).path, "-v", f"--gpu-name=sm_{arch}{suffix}", str(src), "-o", str(Path(tmp, "k.cubin"))],
            capture_output=True,
            text=True,
            check=True,
        )
    regs = re.search(r"Used (\d+) registers", run.stderr)
    spills = re.search(r"(\d+) bytes spill stores", run.stderr)
    return {"registers": int(regs.group(1)) if regs else None, "spill_bytes": int(spills.group(1)) if spills else 0}


def compile_report(
    dim: int,
    arch: int = 80,
    *,
    chunk: int = 64,
    dtype: str = "fp32",
    block_v: int | None = None,
    num_warps: int | None = None,
    kernels_only=None,
) -> list[dict]:
    """Compile every kernel for ``sm_{arch}``; one row per kernel with shared memory, registers, spills.

    ``block_v``/``num_warps`` default to what the launchers use (``launch.launch_config``)."""
    import triton
    from triton.backends.compiler import GPUTarget
    from triton.compiler import ASTSource

    _require_compiler_mode()
    from liquid_memory.ops.triton_scan import kernels
    from liquid_memory.ops.triton_scan.launch import launch_config

    default_bv, default_warps = launch_config(dim, dim)
    block_v, num_warps = block_v or default_bv, num_warps or default_warps
    rows = []
    for name, (fn, signature, constexprs) in _specs(kernels, dim, chunk, dtype, block_v).items():
        if kernels_only and name not in kernels_only:
            continue
        signature = dict(signature, **{key: "constexpr" for key in constexprs})
        compiled = triton.compile(
            ASTSource(fn=fn, signature=signature, constexprs=constexprs),
            target=GPUTarget("cuda", arch, 32),
            options={"num_warps": num_warps},
        )
        usage = _ptxas_usage(compiled.asm["ptx"], arch)
        shared = compiled.metadata.shared
        limit = SHARED_LIMIT.get(arch)
        rows.append(
            dict(
                kernel=name, d=dim, arch=f"sm_{arch}", dtype=dtype, block_v=block_v, num_warps=num_warps,
                shared_bytes=shared,
                fits_shared=None if limit is None else shared <= limit, **usage,
            )
        )  # fmt: skip
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dims", type=int, nargs="+", default=[32, 64, 128])
    parser.add_argument("--archs", type=int, nargs="+", default=[80, 90])
    parser.add_argument("--dtype", default="fp32", choices=["fp32", "bf16", "fp16"])
    parser.add_argument("--json", type=Path, help="also write the rows as JSON here")
    args = parser.parse_args(argv)
    os.environ.setdefault("TRITON_DEFAULT_FP_FUSION", "1")
    rows = [row for arch in args.archs for dim in args.dims for row in compile_report(dim, arch, dtype=args.dtype)]
    print(f"{'kernel':<14}{'d':>5}{'arch':>7}{'BV':>5}{'warps':>6}{'shared B':>10}{'fits':>6}{'regs':>6}{'spill B':>9}")
    for r in rows:
        print(
            f"{r['kernel']:<14}{r['d']:>5}{r['arch']:>7}{r['block_v']:>5}{r['num_warps']:>6}{r['shared_bytes']:>10}"
            f"{str(r['fits_shared']):>6}{r['registers'] or '?':>6}{r['spill_bytes']:>9}"
        )
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
