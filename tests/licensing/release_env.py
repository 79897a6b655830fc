"""Real ``lm-vendor release`` wheels and the fresh venvs they are installed into, shared by the release tests.

One test run builds, in ONE committed copy of this checkout (as a vendor's own checkout: the in-place built
``_C`` library next to the sources, an untracked file among them), first a development release
(``lm-vendor release --dev``, which compiles ``csrc/``) and then, with a stale ``build/lib`` holding that
development build's plaintext kernels, vendor tool and development identity planted in the checkout, a real
release with a fresh vendor key — the sequence that once leaked all of these into the release. Installs reuse
the already-installed torch & co. through a ``.pth`` file pointing at this interpreter's site-packages
(reinstalling torch would take minutes); ``liquid_memory`` itself comes only from the wheel. The kernel
library encrypted into the release is this checkout's build of ``csrc/``.
"""

from __future__ import annotations

import base64
import csv
import hashlib
import io
import json
import os
import shutil
import stat
import subprocess
import sys
import time
import venv
import zipfile
from pathlib import Path

from liquid_memory_vendor import keystore
from liquid_memory_vendor.issue import issue_licence

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent  # this (development) environment's console scripts
PASSPHRASE = "release test vendor passphrase"


def run(cmd: list[str], **kw) -> subprocess.CompletedProcess:
    kw.setdefault("timeout", 900)
    return subprocess.run(cmd, capture_output=True, text=True, **kw)


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LM_") and k != "PYTHONPATH"}
    env.update(OMP_NUM_THREADS="1", MAX_JOBS="2", **extra)
    return env


def committed_copy(dest: Path) -> Path:
    """The checkout's tracked + untracked-not-ignored files (no build outputs, no venvs), committed in a new repo."""
    listing = run(["git", "-C", str(REPO), "ls-files", "-co", "--exclude-standard"])
    assert listing.returncode == 0, listing.stderr
    for rel in listing.stdout.split():
        if (REPO / rel).is_file():
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / rel, dest / rel)
    git = ["git", "-C", str(dest), "-c", "user.name=release test", "-c", "user.email=release@test.invalid"]
    for cmd in (["init", "-q"], ["add", "-A"], ["commit", "-q", "-m", "release test checkout"]):
        res = run([*git, *cmd])
        assert res.returncode == 0, res.stderr
    return dest


def prebuilt_artifact(dest: Path) -> Path:
    """The committed fp32/d64 AOTI package, decrypted with the development identity, as ``--prebuilt`` input
    (a stand-in for a fresh ``tools/build_artifacts.py`` build, which ``test_rebuild.py`` covers)."""
    from liquid_memory_vendor.dev import dev_vendor

    from liquid_memory.artifacts.crypto import decrypt, read_key_id

    meta = json.loads((REPO / "dist_public" / "AOTI_METADATA.json").read_text())
    entry = next(a for a in meta["artifacts"] if a["dtype"] == "float32" and a["head_dim"] == 64)
    blob = (REPO / entry["file"]).read_bytes()
    plain = decrypt(blob, dev_vendor().content_keys[read_key_id(blob)], name=entry["name"], version=meta["version"])
    dest.mkdir(parents=True, exist_ok=True)
    (dest / entry["name"]).write_bytes(plain)
    (dest / f"{entry['name']}.json").write_text(json.dumps({k: v for k, v in entry.items() if k != "file"}))
    return dest


def vendor_home(home: Path, label: str) -> Path:
    """``lm-vendor init`` (the real console script) in ``home``; the passphrase sits in ``home/pass``."""
    home.mkdir(parents=True, exist_ok=True)
    (home / "pass").write_text(PASSPHRASE + "\n")
    res = run([str(BIN / "lm-vendor"), "init", "--home", str(home), "--passphrase-file", str(home / "pass"),
               "--label", label], env=clean_env())  # fmt: skip
    assert res.returncode == 0, res.stderr[-2000:]
    return home


def public_key_line(*args: str) -> str:
    res = run([str(BIN / "lm-vendor"), "public-key", *args], env=clean_env())
    assert res.returncode == 0, res.stderr[-2000:]
    return res.stdout.strip()


def install(wheel: Path, where: Path, *, shared: list[str] | None = None) -> Path:
    """A fresh venv holding ``wheel`` (no deps) and a ``.pth`` to ``shared`` (default: this interpreter's
    site-packages; listed after the venv's own, so the wheel's liquid_memory wins). Returns its bin/."""
    venv.create(where, with_pip=False)
    site = next((where / "lib").glob("python3*/site-packages"))
    if shared is None:
        shared = [p for p in sys.path if Path(p).name in ("site-packages", "dist-packages") and Path(p).is_dir()]
    (site / "shared.pth").write_text("\n".join(shared) + "\n")
    res = run([sys.executable, "-m", "pip", "--python", str(where / "bin" / "python"), "install", "--no-deps",
               "--no-index", "--no-compile", "-q", str(wheel)])  # fmt: skip
    assert res.returncode == 0, res.stderr[-3000:]
    return where / "bin"


def member(name: str, mode: int = stat.S_IFREG | 0o644) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))
    info.external_attr = mode << 16
    return info


def rewrite_wheel(wheel: Path, out: Path, edit, *, consistent_record: bool = False) -> Path:  # noqa: ANN001
    """A copy of ``wheel`` with members changed by ``edit([(info, bytes)]) -> [(info, bytes)]``; with
    ``consistent_record`` RECORD is regenerated to match (an attacker who knows the format)."""
    with zipfile.ZipFile(wheel) as src:
        members = edit([(i, src.read(i)) for i in src.infolist()])
    if consistent_record:
        record = next(i for i, _ in members if i.filename.endswith(".dist-info/RECORD"))
        buf = io.StringIO()
        writer = csv.writer(buf, lineterminator="\n")
        for info, data in members:
            if info is not record:
                digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
                writer.writerow([info.filename, f"sha256={digest}", len(data)])
        writer.writerow([record.filename, "", ""])
        members = [(i, buf.getvalue().encode() if i is record else d) for i, d in members]
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED) as dst:
        for info, data in members:
            dst.writestr(info, data)
    return out


STALE_MARKER = "liquid_memory/zz_stale_build.py"


def plant_stale_build(checkout: Path, dev_wheel: Path) -> None:
    """``build/lib`` as an in-checkout build leaves it (``python -m build``, ``setup.py build``): the development
    wheel's plaintext kernel library, vendor tool and development identity, plus a marker module."""
    lib = checkout / "build" / "lib"
    with zipfile.ZipFile(dev_wheel) as z:
        for name in z.namelist():
            top = name.split("/", 1)[0]
            if top == "liquid_memory_vendor" or (top == "liquid_memory" and name.endswith(".so")):
                (lib / name).parent.mkdir(parents=True, exist_ok=True)
                (lib / name).write_bytes(z.read(name))
    (lib / STALE_MARKER).write_text("STALE = True\n")


class Release:
    """A development release, then a real release, in one checkout; the real wheel installed in a fresh venv."""

    def __init__(self, tmp: Path) -> None:
        from liquid_memory.ops.cpp import cpp_available

        assert cpp_available()
        t0 = time.perf_counter()
        self.checkout = committed_copy(tmp / "checkout")
        # as in a vendor's own checkout: scripts/setup.sh built _C in place; a stray untracked file
        kernel_lib = next((REPO / "src" / "liquid_memory").glob("_C*.so"))
        shutil.copy2(kernel_lib, self.checkout / "src" / "liquid_memory" / kernel_lib.name)
        (self.checkout / "src" / "liquid_memory" / "zz_untracked.py").write_text("UNTRACKED = True\n")
        prebuilt = prebuilt_artifact(tmp / "prebuilt")
        self.home = vendor_home(tmp / "home", "Release Vendor")
        self.vendor = keystore.load(self.home / "vendor.key", PASSPHRASE.encode())
        common = ["--repo", str(self.checkout), "--prebuilt", str(prebuilt)]
        lm_vendor = str(BIN / "lm-vendor")
        (tmp / "dev-home").mkdir()
        res = run([lm_vendor, "release", "--dev", "--home", str(tmp / "dev-home"), *common, "--wheel-dir",
                   str(tmp / "dev-out")], cwd=self.checkout, env=clean_env())  # fmt: skip
        assert res.returncode == 0, res.stderr[-3000:]
        self.dev_build_s = time.perf_counter() - t0
        (self.dev_wheel,) = (tmp / "dev-out").glob("*.whl")
        self.dev_left_build = (self.checkout / "build").exists()
        plant_stale_build(self.checkout, self.dev_wheel)
        t1 = time.perf_counter()
        res = run([lm_vendor, "release", "--home", str(self.home), "--passphrase-file", str(self.home / "pass"),
                   *common, "--wheel-dir", str(tmp / "out")], cwd=self.checkout, env=clean_env())  # fmt: skip
        assert res.returncode == 0, res.stderr[-3000:]
        self.release_stderr = res.stderr
        self.build_s = time.perf_counter() - t1
        (self.wheel,) = (tmp / "out").glob("*.whl")
        self.sequence = json.loads((self.home / "release-seq.json").read_text())["sequence"]
        t2 = time.perf_counter()
        self.bin = install(self.wheel, tmp / "venv")
        self.site = next((tmp / "venv" / "lib").glob("python3*/site-packages"))
        self.pkg = self.site / "liquid_memory"
        self.cwd = tmp / "elsewhere"
        self.cwd.mkdir()
        self.trusted = {self.vendor.kid: self.vendor.public_key}
        print(f"\ndev release (compiles csrc/) {self.dev_build_s:.1f} s, release {self.build_s:.1f} s, "
              f"install {time.perf_counter() - t2:.1f} s")  # fmt: skip

    def cli(self, *args: str, **env: str) -> subprocess.CompletedProcess:
        return run([str(self.bin / "liquid-memory"), *args], cwd=self.cwd, env=clean_env(**env))

    def python(self, code: str, *args: str, **env: str) -> subprocess.CompletedProcess:
        return run([str(self.bin / "python"), "-c", code, *args], cwd=self.cwd, env=clean_env(**env))

    def licence(self, **kw) -> str:
        kw.setdefault("expires", int(time.time()) + 3600)
        kw.setdefault("features", ["kernel"])
        return issue_licence(self.vendor, licensee="Release Customer", **kw)


def base_site(wheel: Path, dest: Path) -> Path:
    """A folder holding only what the release wheel declares (torch & co.) and their own requirements, linked
    from this interpreter's site-packages: what ``pip install`` of the wheel gives a fresh venv, without the
    network."""
    from tests.base_env import link_site

    with zipfile.ZipFile(wheel) as z:
        meta = z.read(next(n for n in z.namelist() if n.endswith(".dist-info/METADATA"))).decode()
    declared = [line.split(":", 1)[1].strip() for line in meta.splitlines() if line.startswith("Requires-Dist:")]
    return link_site(dest, declared)
