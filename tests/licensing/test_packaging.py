"""The sdist holds everything a build needs, one version number, python_requires matches."""

from __future__ import annotations

import subprocess
import sys
import tarfile
from email.parser import Parser
from pathlib import Path

import liquid_memory

REPO = Path(__file__).resolve().parents[2]


def test_sdist_is_buildable_and_versioned_from_one_source(tmp_path):
    res = subprocess.run([sys.executable, "-m", "build", "--sdist", "--no-isolation", "--outdir", str(tmp_path),
                          str(REPO)], capture_output=True, text=True, timeout=300)  # fmt: skip
    assert res.returncode == 0, res.stderr[-2000:]
    (sdist,) = tmp_path.glob("liquid_memory-*.tar.gz")
    with tarfile.open(sdist) as tar:
        names = {n.split("/", 1)[1] for n in tar.getnames() if "/" in n}
        info = Parser().parsestr(tar.extractfile(f"liquid_memory-{liquid_memory.__version__}/PKG-INFO").read().decode())
    needed = {p.relative_to(REPO).as_posix() for p in (REPO / "csrc").iterdir() if p.suffix in (".cpp", ".h")}
    needed |= {p.relative_to(REPO).as_posix() for p in (REPO / "dist_public").rglob("*") if p.is_file()}
    needed |= {"setup.py", "pyproject.toml", "MANIFEST.md", "README.md", "src/liquid_memory/version.py",
               "licensing/dev_identity/vendor.key", "licensing/setup.py"}  # fmt: skip
    assert needed <= names, sorted(needed - names)
    assert not [n for n in names if n.endswith((".so", ".pyc"))]
    assert info["Version"] == liquid_memory.__version__
    assert info["Requires-Python"] == ">=3.11"
    assert "DEVELOPMENT BUILD" in info["Summary"]  # built without a release trust root


def test_vendor_tool_is_its_own_distribution(tmp_path):
    src = tmp_path / "repo"  # a copy: building writes build/ and egg-info next to the sources
    import shutil

    shutil.copytree(REPO / "licensing", src / "licensing", ignore=shutil.ignore_patterns("__pycache__", "build"))
    shutil.copytree(REPO / "src" / "liquid_memory", src / "src" / "liquid_memory", ignore=lambda d, n: n)
    shutil.copy(REPO / "src" / "liquid_memory" / "version.py", src / "src" / "liquid_memory" / "version.py")
    res = subprocess.run([sys.executable, "-m", "build", "--wheel", "--no-isolation", "--outdir", str(tmp_path / "out"),
                          str(src / "licensing")], capture_output=True, text=True, timeout=300)  # fmt: skip
    assert res.returncode == 0, res.stderr[-2000:]
    (wheel,) = (tmp_path / "out").glob("liquid_memory_vendor-*.whl")
    import zipfile

    names = zipfile.ZipFile(wheel).namelist()
    assert "liquid_memory_vendor/cli.py" in names and "liquid_memory_vendor/setup.py" not in names
    assert not [n for n in names if n.startswith("liquid_memory/")]  # the SDK is a dependency, not inside
    meta = zipfile.ZipFile(wheel).read(next(n for n in names if n.endswith("METADATA"))).decode()
    assert f"Requires-Dist: liquid-memory=={liquid_memory.__version__}" in meta
