"""First-call cost of a release install: verify every file + decrypt + load the encrypted kernel library.

Usage: ``python -m benchmarks release-first-call [--runs 5] [--out PATH.json]``.
Runs the real vendor flow on a copy of this checkout with a throwaway vendor: ``lm-vendor init``,
``lm-vendor release`` (AOTI packages from ``.lm-build/artifacts`` — run ``tools/build_artifacts.py`` first —
and this checkout's built ``_C`` library), installs the wheel into a fresh venv that borrows torch from this
interpreter, then times the first ``liquid_scan(backend="cpp")`` call in ``--runs`` fresh processes.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import venv
from pathlib import Path

from benchmarks.output import format_table, write_bar_png

REPO = Path(__file__).resolve().parents[2]
PROBE = r"""
import json, os, sys, time, torch
torch.set_num_threads(1)
from liquid_memory import liquid_scan
from liquid_memory.artifacts import native
x = torch.randn(1, 4, 256, 64)
t0 = time.perf_counter()
liquid_scan(x, x, x, -x.abs() * 0.1, backend="cpp")
first = time.perf_counter() - t0
t0 = time.perf_counter()
liquid_scan(x, x, x, -x.abs() * 0.1, backend="cpp")
print(json.dumps({"first_call_s": first, "second_call_s": time.perf_counter() - t0, **native.first_load_seconds}))
"""


def _run(cmd: list[str], **kw) -> str:
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=900, **kw)
    if res.returncode != 0:
        raise SystemExit(f"{' '.join(cmd[:3])} failed:\n{res.stderr[-3000:]}")
    return res.stdout


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``python -m benchmarks release-first-call``."""
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--out", type=Path, default=Path("bench_results/release_first_call.json"))


def run(args: argparse.Namespace) -> int:
    """Measure, print the table, write ``--out``."""
    bin_dir = Path(sys.executable).parent
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        src = tmp / "src"
        for rel in _run(["git", "-C", str(REPO), "ls-files", "-co", "--exclude-standard"]).split():
            if (REPO / rel).is_file():
                (src / rel).parent.mkdir(parents=True, exist_ok=True)
                (src / rel).write_bytes((REPO / rel).read_bytes())
        git = ["git", "-C", str(src), "-c", "user.name=bench", "-c", "user.email=bench@localhost"]
        for cmd in (["init", "-q"], ["add", "-A"], ["commit", "-q", "-m", "benchmark checkout"]):
            _run([*git, *cmd])  # lm-vendor release exports the files git tracks
        home, pw = tmp / "home", tmp / "pass"
        pw.write_text("benchmark throwaway vendor\n")
        vendor = [str(bin_dir / "lm-vendor")]
        _run([*vendor, "init", "--home", str(home), "--passphrase-file", str(pw)])
        _run([*vendor, "release", "--home", str(home), "--passphrase-file", str(pw), "--repo", str(src),
              "--prebuilt", str(REPO / ".lm-build" / "artifacts"), "--kernel-lib",
              str(next((REPO / "src" / "liquid_memory").glob("_C*.so"))), "--wheel-dir", str(tmp / "out")])  # fmt: skip
        (wheel,) = (tmp / "out").glob("*.whl")
        venv.create(tmp / "venv", with_pip=False)
        site = next((tmp / "venv" / "lib").glob("python3*/site-packages"))
        shared = [p for p in sys.path if Path(p).name == "site-packages" and Path(p).is_dir()]
        (site / "shared.pth").write_text("\n".join(shared) + "\n")
        _run([sys.executable, "-m", "pip", "--python", str(tmp / "venv" / "bin" / "python"), "install", "--no-deps",
              "--no-index", "--no-compile", "-q", str(wheel)])  # fmt: skip
        key = _run([*vendor, "issue", "--home", str(home), "--passphrase-file", str(pw), "--licensee", "Bench",
                    "--expires", "2099-01-01", "--features", "kernel"]).strip()  # fmt: skip
        env = {k: v for k, v in os.environ.items() if not k.startswith("LM_")}
        env.update(LM_PRIVATE_KEY=key, LM_STATE_DIR=str(tmp / "state"), OMP_NUM_THREADS="1")
        runs = [json.loads(_run([str(tmp / "venv" / "bin" / "python"), "-c", PROBE], env=env, cwd=tmp).splitlines()[-1])
                for _ in range(args.runs)]  # fmt: skip
    result = {"runs": runs, "wheel": wheel.name, "machine": "shared 2-core (other jobs running)"}
    for field in ("first_call_s", "verify_decrypt", "load", "second_call_s"):
        result[f"median_{field}"] = statistics.median(r[field] for r in runs)
    fields = ("first_call_s", "verify_decrypt", "load", "second_call_s")
    print(format_table([{"run": i, **{f: r[f] for f in fields}} for i, r in enumerate(runs, 1)]
                       + [{"run": "median", **{f: result[f"median_{f}"] for f in fields}}]))  # fmt: skip
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    bars = {"median of fresh processes": {f: result[f"median_{f}"] for f in fields}}
    png = write_bar_png(args.out.with_suffix(".png"), bars, "seconds", "release install: first liquid_scan call")
    print(f"wrote {args.out} and {png}")
    return 0
