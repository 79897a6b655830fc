"""Cost of the licence under torch.compile: the per-call re-check, and the release path's first call.

Usage: ``python -m benchmarks licence-recheck [--out bench_results/licence_recheck.json]``. Compiles one tiny
``liquid_scan`` call (B=1, H=2, T=64, d=32: small, so fixed per-call costs are visible) twice — through the
licence-re-checking op ``liquid_memory_licensed::scan_fwd`` (what ``liquid_scan`` uses while compiling) and
through the raw C++ op with no check — and times both, plus ``require_feature`` alone. Uses the committed
DEVELOPMENT identity for its licence. The release path's first call (verify every file + decrypt + load) is
measured by ``tests/licensing/test_wheel.py`` in a real release install and printed there.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from pathlib import Path

from benchmarks.output import write_bar_png


def _median_us(fn, n: int = 2000) -> float:
    for _ in range(50):
        fn()
    samples = []
    for _ in range(7):
        t0 = time.perf_counter()
        for _ in range(n):
            fn()
        samples.append((time.perf_counter() - t0) / n * 1e6)
    return statistics.median(samples)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``python -m benchmarks licence-recheck``."""
    parser.add_argument("--out", type=Path, default=Path("bench_results/licence_recheck.json"))


def run(args: argparse.Namespace) -> int:
    """Measure, print the table, write ``--out``."""
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    import torch

    torch.set_num_threads(1)
    from liquid_memory_vendor.dev import issue_dev_licence

    from liquid_memory.licensing import require_feature
    from liquid_memory.ops import cpp, licensed

    os.environ["LM_PRIVATE_KEY"] = issue_dev_licence(("kernel",))
    require_feature("kernel")
    ops = cpp._require()
    g = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(1, 2, 64, 32, generator=g) for _ in range(3))
    log_a = -torch.rand(1, 2, 64, 32, generator=g)

    def checked(q, k, v, log_a):
        return licensed.scan_fwd(q, k, v, log_a, None, False, False)[0] * 1.0

    def raw(q, k, v, log_a):
        return ops.liquid_scan_fwd(q, k, v, log_a, None, False, False)[0] * 1.0

    with torch.no_grad():
        c_checked = torch.compile(checked, fullgraph=True)
        c_raw = torch.compile(raw, fullgraph=True)
        assert torch.equal(c_checked(q, k, v, log_a), c_raw(q, k, v, log_a))
        rows = {
            "require_feature_us": _median_us(lambda: require_feature("kernel"), 20000),
            "compiled_raw_op_us": _median_us(lambda: c_raw(q, k, v, log_a)),
            "compiled_rechecking_op_us": _median_us(lambda: c_checked(q, k, v, log_a)),
        }
    rows["recheck_overhead_us"] = rows["compiled_rechecking_op_us"] - rows["compiled_raw_op_us"]
    result = {"torch": torch.__version__, "threads": 1, "shape": [1, 2, 64, 32], "machine": "shared 2-core",
              **{k: round(v, 2) for k, v in rows.items()}}  # fmt: skip
    for key, value in result.items():
        print(f"{key:32s} {value}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    bars = {"per call": {k.removesuffix("_us"): v for k, v in rows.items() if k != "recheck_overhead_us"}}
    png = write_bar_png(args.out.with_suffix(".png"), bars, "µs", "licence re-check under torch.compile (B=1 H=2 T=64)")
    print(f"wrote {args.out} and {png}")
    return 0
