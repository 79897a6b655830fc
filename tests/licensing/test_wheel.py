"""Build the wheel, install it into a fresh venv and run the customer flow from outside the checkout.

The venv reuses the already-installed torch & co. through a ``.pth`` file pointing at the build
interpreter's site-packages (reinstalling torch would take minutes); ``liquid_memory`` itself comes
only from the wheel — the test checks that.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import venv
from pathlib import Path

import pytest
from liquid_memory_vendor.dev import issue_dev_licence

from tests.licensing.helpers import make_vendor

REPO = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow

FLOW = r"""
import json, os, sys, torch
import liquid_memory
from liquid_memory import LiquidMemory, errors
from liquid_memory.artifacts import aoti_liquid_scan
torch.manual_seed(0)
out = {"package": liquid_memory.__file__}
x = torch.randn(2, 100, 128)
m = LiquidMemory(128, 2, batch_first=True).eval()
with torch.no_grad():
    m.backend = "reference"
    ref, _ = m(x, x, x, need_weights=False, is_causal=True)
    m.backend = "aoti"
    try:
        os.environ.pop("LM_PRIVATE_KEY")
        m(x, x, x, need_weights=False, is_causal=True)
    except errors.LicenseMissing as exc:
        out["without_licence"] = exc.code
    os.environ["LM_PRIVATE_KEY"] = sys.argv[1]
    y, _ = m(x, x, x, need_weights=False, is_causal=True)
    m.backend = "cpp"
    y_cpp, _ = m(x, x, x, need_weights=False, is_causal=True)
out["rel_err"] = ((y - ref).norm() / ref.norm()).item()
out["cpp_rel_err"] = ((y_cpp - ref).norm() / ref.norm()).item()
out["finite"] = bool(torch.isfinite(y).all() and torch.isfinite(y_cpp).all())
print(json.dumps(out))
"""


def _run(cmd: list[str], **kw) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, capture_output=True, text=True, timeout=300, **kw)


def _copy_checkout(tmp: Path) -> Path:
    """The checkout's tracked + untracked-not-ignored files (no build outputs, no venvs)."""
    src = tmp / "src"
    src.mkdir()
    listing = _run(["git", "-C", str(REPO), "ls-files", "-co", "--exclude-standard"])
    if listing.returncode != 0:  # not a git checkout (e.g. an unpacked archive): copy minus build outputs
        src.rmdir()
        outputs = (".git", ".venv", "venv", "build", "dist", "*.egg-info", "__pycache__", ".lm-build")
        caches = ("bench_results", ".pytest_cache", ".hypothesis", ".ruff_cache", "*.so")
        skip = shutil.ignore_patterns(*outputs, *caches)
        shutil.copytree(REPO, src, ignore=skip)
        return src
    for rel in listing.stdout.split():
        if (REPO / rel).is_file():
            (src / rel).parent.mkdir(parents=True, exist_ok=True)
            (src / rel).write_bytes((REPO / rel).read_bytes())
    return src


@pytest.fixture(scope="module")
def checkout(tmp_path_factory) -> Path:
    """One copy for both wheels, so the C++ extension compiles once (ninja reuses build/ the second time)."""
    return _copy_checkout(tmp_path_factory.mktemp("checkout"))


def _build_wheel(tmp: Path, env: dict[str, str], src: Path) -> Path:
    res = _run([sys.executable, "-m", "build", "--wheel", "--no-isolation", "--outdir", str(tmp / "out"), str(src)],
               env=env)  # fmt: skip
    assert res.returncode == 0, res.stderr[-3000:]
    (wheel,) = (tmp / "out").glob("liquid_memory-*.whl")
    return wheel


def _install(wheel: Path, where: Path) -> Path:
    venv.create(where, with_pip=False)
    site = next((where / "lib").glob("python3*/site-packages"))
    # torch & co. from this interpreter's site-packages dirs (listed after the venv's own, so the wheel's
    # liquid_memory wins; .pth files inside them — e.g. an editable install's finder — are not executed)
    shared = [p for p in sys.path if Path(p).name in ("site-packages", "dist-packages") and Path(p).is_dir()]
    (site / "shared.pth").write_text("\n".join(shared) + "\n")
    py = where / "bin" / "python"
    res = _run([str(py), "-m", "pip", "install", "--no-deps", "--no-index", "-q", str(wheel)])
    assert res.returncode == 0, res.stderr[-3000:]
    return where / "bin"


def _clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LM_") and k != "PYTHONPATH"}
    env.update(OMP_NUM_THREADS="2", MAX_JOBS="2", **extra)
    return env


def test_wheel_customer_flow(tmp_path, checkout):
    t0 = time.perf_counter()
    wheel = _build_wheel(tmp_path, _clean_env(), checkout)
    t_build = time.perf_counter() - t0
    # security reviewer: verify the wheel before installing it (this checkout's CLI)
    res = _run([sys.executable, "-m", "liquid_memory.cli", "verify", str(wheel), "--json"], env=_clean_env())
    assert res.returncode == 0, res.stdout + res.stderr
    assert json.loads(res.stdout)["ok"] is True
    bin_dir = _install(wheel, tmp_path / "venv")
    t_install = time.perf_counter() - t0 - t_build
    cwd = tmp_path / "elsewhere"
    cwd.mkdir()
    key = issue_dev_licence(features=("kernel",), licensee="Wheel Test Customer")
    # the installed package verifies itself
    res = _run([str(bin_dir / "liquid-memory"), "verify", "--json"], cwd=cwd, env=_clean_env())
    assert res.returncode == 0, res.stdout + res.stderr
    assert "site-packages/liquid_memory" in json.loads(res.stdout)["target"]
    # licence shown, never the secret
    res = _run([str(bin_dir / "liquid-memory"), "license"], cwd=cwd, env=_clean_env(LM_PRIVATE_KEY=key))
    assert res.returncode == 0 and "Wheel Test Customer" in res.stdout and "kernel" in res.stdout, res.stderr
    assert key.rsplit(".", 1)[1] not in res.stdout + res.stderr
    res = _run([str(bin_dir / "liquid-memory"), "license"], cwd=cwd, env=_clean_env())
    assert res.returncode == 1 and "LM101" in res.stderr and "Traceback" not in res.stderr
    # the dev identity ships inside the wheel's vendor package
    res = _run([str(bin_dir / "lm-vendor"), "issue", "--dev", "--licensee", "Demo", "--expires", "2099-01-01",
                "--features", "kernel"], cwd=cwd, env=_clean_env())  # fmt: skip
    assert res.returncode == 0 and res.stdout.startswith("lmk1."), res.stderr
    # import LiquidMemory and run it on the licensed aoti backend; compare with the reference backend
    res = _run([str(bin_dir / "python"), "-c", FLOW, key], cwd=cwd, env=_clean_env(LM_PRIVATE_KEY=key))
    assert res.returncode == 0, res.stderr[-3000:]
    out = json.loads(res.stdout.strip().splitlines()[-1])
    assert str(tmp_path / "venv") in out["package"]
    assert out["without_licence"] == "LM101"
    assert out["finite"] and out["rel_err"] < 1e-4 and out["cpp_rel_err"] < 1e-4, out
    print(f"\nwheel build {t_build:.1f} s, venv + install {t_install:.1f} s, total {time.perf_counter() - t0:.1f} s")


def _rerelease(vendor, src: Path, home: Path) -> None:
    """What ``lm-vendor release`` does with a real vendor key (one artifact, re-encrypted for ``vendor``)."""
    from liquid_memory_vendor import release
    from liquid_memory_vendor.dev import dev_vendor

    from liquid_memory.artifacts.crypto import decrypt, read_key_id

    meta = json.loads((src / "dist_public" / "AOTI_METADATA.json").read_text())
    entry = next(a for a in meta["artifacts"] if a["dtype"] == "float32" and a["head_dim"] == 64)
    blob = (src / entry["file"]).read_bytes()
    plain = decrypt(blob, dev_vendor().content_keys[read_key_id(blob)], name=entry["name"], version=meta["version"])
    release.write_dist_public(vendor, src, [(entry, plain)], home)
    release.sign_manifest(vendor, src)


def test_release_wheel_trusts_only_its_vendor(tmp_path, checkout):
    """A wheel released by a real vendor trusts only that vendor: no dev identity, no LM_DEV_TRUSTED_KEYS."""
    vendor, stranger = make_vendor("Release Vendor"), make_vendor("Stranger")
    from liquid_memory_vendor.release import build_wheel

    (tmp_path / "home").mkdir()
    _rerelease(vendor, checkout, tmp_path / "home")  # runs after the dev-wheel test (file order)
    wheel = build_wheel(vendor, checkout, tmp_path / "out", release_build=True)  # the code `lm-vendor release` runs
    bin_dir = _install(wheel, tmp_path / "venv")
    cwd = tmp_path / "elsewhere"
    cwd.mkdir()
    from liquid_memory_vendor.issue import issue_licence

    def license_json(key: str, **extra: str) -> dict:
        res = _run([str(bin_dir / "liquid-memory"), "license", "--json"], cwd=cwd,
                   env=_clean_env(LM_PRIVATE_KEY=key, **extra))  # fmt: skip
        assert "Traceback" not in res.stderr
        return json.loads(res.stdout)

    good = issue_licence(vendor, licensee="Real Customer", expires=2**33, features=["kernel"])
    doc = license_json(good)
    assert doc["valid"] is True and doc["build"] == "release", doc
    assert license_json(issue_dev_licence())["code"] == "LM104"
    forged = issue_licence(stranger, licensee="Mallory", expires=2**33, features=["kernel"])
    assert license_json(forged, LM_DEV_TRUSTED_KEYS=stranger.trust_entry())["code"] == "LM104"
    res = _run([str(bin_dir / "liquid-memory"), "verify", "--json"], cwd=cwd, env=_clean_env())
    assert res.returncode == 0, res.stdout
    # the release's artifact runs under the vendor's licence
    res = _run([str(bin_dir / "python"), "-c", FLOW, good], cwd=cwd, env=_clean_env(LM_PRIVATE_KEY=good))
    assert res.returncode == 0, res.stderr[-3000:]
    out = json.loads(res.stdout.strip().splitlines()[-1])
    assert out["finite"] and out["rel_err"] < 1e-4, out
