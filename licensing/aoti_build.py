"""Build the inference ``liquid_scan`` into AOTInductor ``.pt2`` packages (CPU, dynamic B/H/T).

What is compiled: a graph that calls the licensed C++ op ``liquid_memory::liquid_scan_fwd`` (forward, no
reverse — the loader flips time for ``reverse``), with ``initial_state`` always given and the final state
always returned. Why this graph: it runs the fast kernel (the previous packages compiled the open chunked
reference and were 5.8x slower than ``cpp``), and the package is useless without the kernel library —
which a release ships only encrypted — so loading it (from Python, or from C++/libtorch after the decrypted
library was ``dlopen``ed) needs a ``kernel`` licence. The whole LiquidMemory layer is not shipped compiled:
its weights are the customer's, so the vendor cannot build that package; customers can export their own
model around this op.
Length is exported as ``chunk * Dim`` (the wrapper pads to a multiple); batch and heads are dynamic;
head dim and dtype are fixed per artifact. ``-march`` is pinned to a portable baseline (x86-64-v3 =
AVX2/FMA/BMI2) instead of inductor's default ``-march=native``. The embedded shared objects are
stripped. docs/architecture.md ("The aoti backend") lists the pitfalls this avoids.
"""

from __future__ import annotations

import hashlib
import io
import shutil
import subprocess
import tempfile
import time
import zipfile
from dataclasses import dataclass
from pathlib import Path

import torch

CHUNK = 64
MAX_CHUNKS = 1 << 16  # length up to 4M tokens
ISA_MARCH = {"avx2": "x86-64-v3", "avx512": "x86-64-v4"}
DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16}


class ScanModule(torch.nn.Module):
    """Forward scan with a given initial state: ``(q, k, v, log_a, state0) -> (o, final_state)``."""

    def forward(self, q, k, v, log_a, state0):  # noqa: D102 - shapes of the liquid_scan contract
        o, final = torch.ops.liquid_memory.liquid_scan_fwd(q, k, v, log_a, state0, False, False)
        return o, final


@dataclass
class Built:
    name: str
    plaintext: bytes
    info: dict[str, object]


def artifact_name(dtype: str, head_dim: int, isa: str) -> str:
    return f"liquid_scan_{dtype}_d{head_dim}_{isa}.pt2"


def example_inputs(dtype: torch.dtype, head_dim: int, batch: int = 2, heads: int = 3, length: int = 2 * CHUNK):
    g = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(batch, heads, length, head_dim, generator=g).to(dtype) for _ in range(3))
    log_a = -torch.rand(batch, heads, length, head_dim, generator=g)
    state0 = torch.zeros(batch, heads, head_dim, head_dim)
    return q, k, v, log_a, state0


def _strip_package(data: bytes) -> bytes:
    """Strip debug symbols from every ``.so`` inside the .pt2 zip (1.7 MB -> ~0.35 MB)."""
    strip = shutil.which("strip")
    if strip is None:
        return data
    src = zipfile.ZipFile(io.BytesIO(data))
    out = io.BytesIO()
    with (
        zipfile.ZipFile(out, "w", compression=zipfile.ZIP_STORED) as dst,
        tempfile.TemporaryDirectory() as tmp,
    ):
        for info in src.infolist():
            payload = src.read(info)
            if info.filename.endswith(".so"):
                p = Path(tmp) / "x.so"
                p.write_bytes(payload)
                subprocess.run([strip, "--strip-unneeded", str(p)], check=True)
                payload = p.read_bytes()
            zi = zipfile.ZipInfo(info.filename, date_time=(1980, 1, 1, 0, 0, 0))
            zi.external_attr = info.external_attr
            dst.writestr(zi, payload)
    return out.getvalue()


def build(dtype: str, head_dim: int, isa: str = "avx2", *, max_batch: int = 4096, max_heads: int = 1024) -> Built:
    """Export + AOT-compile one variant; returns the stripped package bytes and its metadata."""
    from torch.export import Dim

    from liquid_memory.ops.cpp import _require

    _require()  # the op (and its fake kernel) must be registered to export a graph that calls it
    tdtype = DTYPES[dtype]
    batch, heads = Dim("batch", min=1, max=max_batch), Dim("heads", min=1, max=max_heads)
    chunks = Dim("chunks", min=1, max=MAX_CHUNKS)
    t = CHUNK * chunks
    act = {0: batch, 1: heads, 2: t}
    dyn = (act, act, act, act, {0: batch, 1: heads})
    t0 = time.perf_counter()
    ep = torch.export.export(ScanModule(), example_inputs(tdtype, head_dim), dynamic_shapes=dyn, strict=False)
    t1 = time.perf_counter()
    configs = {"aot_inductor.check_lowerbound": False, "cpp.march": ISA_MARCH[isa]}
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "pkg.pt2"
        torch._inductor.aoti_compile_and_package(ep, package_path=str(path), inductor_configs=configs)
        raw = path.read_bytes()
    t2 = time.perf_counter()
    plaintext = _strip_package(raw)
    name = artifact_name(dtype, head_dim, isa)
    info = {
        "name": name,
        "dtype": dtype,
        "head_dim": head_dim,
        "chunk_size": CHUNK,
        "isa": isa,
        "march": ISA_MARCH[isa],
        "dynamic": {
            "batch": [1, max_batch],
            "heads": [1, max_heads],
            "length_multiple": CHUNK,
            "length": [1, CHUNK * MAX_CHUNKS],
        },
        "precision_safe": False,
        "graph": "liquid_memory::liquid_scan_fwd (the C++ kernel op; needs the kernel library loaded)",
        "plaintext_size": len(plaintext),
        "plaintext_sha256": hashlib.sha256(plaintext).hexdigest(),
        "unstripped_size": len(raw),
        "export_seconds": round(t1 - t0, 2),
        "compile_seconds": round(t2 - t1, 2),
    }
    return Built(name, plaintext, info)
