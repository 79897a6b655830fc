"""``lm-vendor release``: encrypt the artifacts, write dist_public/ + signed MANIFEST.md, build the wheel.

The plaintext packages come from ``tools/build_artifacts.py`` (or are built here). For a real vendor
key the wheel is a *release* build: ``LM_RELEASE_TRUST_ROOT`` points setup.py's build hook at a trust
root holding only that vendor's public key, so the wheel trusts nothing else. With the committed
DEVELOPMENT identity the wheel stays a development build. Every wheel is built in a fresh export of the
tracked files (``export``), and a release wheel must pass the positive list (``wheel_contents``) before
it is signed.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

import torch
from liquid_memory_vendor.export import export_tree
from liquid_memory_vendor.issue import sign_revocation_list
from liquid_memory_vendor.keystore import VendorKey
from liquid_memory_vendor.wheel_contents import check_release_wheel

from liquid_memory.artifacts.crypto import encrypt
from liquid_memory.errors import UsageError
from liquid_memory.licensing.trust import is_development_key
from liquid_memory.manifest.format import Row, assemble, manifest_message, render_body
from liquid_memory.version import __version__

PRODUCT = "liquid-memory"
METADATA_FORMAT = "lm-aoti-metadata-v1"


def source_commit(repo: Path) -> str:
    try:
        out = subprocess.run(["git", "-C", str(repo), "rev-parse", "HEAD"], capture_output=True, text=True, check=True)
        return out.stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def load_prebuilt(folder: Path) -> list[tuple[dict[str, object], bytes]]:
    out = []
    for info_path in sorted(folder.glob("*.pt2.json")):
        info = json.loads(info_path.read_text())
        data = (folder / info["name"]).read_bytes()
        if hashlib.sha256(data).hexdigest() != info["plaintext_sha256"]:
            raise UsageError(f"{info['name']} in {folder} does not match its build info; rebuild it")
        out.append((info, data))
    if not out:
        raise UsageError(f"no built artifacts in {folder}: run tools/build_artifacts.py first")
    return out


def write_kernel_library(vk: VendorKey, dist: Path, library: Path) -> None:
    """Encrypt the C++ kernel library (``liquid_memory._C``) into ``dist_public/kernels/`` + KERNELS.json."""
    from liquid_memory.artifacts import native

    ckid, key = vk.content_key_for("kernel", __version__)
    plaintext = library.read_bytes()
    name = native.library_name()
    (dist / "kernels").mkdir(exist_ok=True)
    (dist / "kernels" / f"{name}.enc").write_bytes(encrypt(plaintext, key, ckid, name=name, version=__version__))
    meta = {
        "format": native.KERNELS_FORMAT,
        "version": __version__,
        "torch": torch.__version__,
        "libraries": [
            {
                "name": name,
                "file": f"dist_public/kernels/{name}.enc",
                "platform": native.platform_tag(),
                "plaintext_sha256": hashlib.sha256(plaintext).hexdigest(),
                "plaintext_size": len(plaintext),
                "content_key_id": ckid,
            }
        ],  # fmt: skip
    }
    (dist / "KERNELS.json").write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n")


def find_kernel_library(repo: Path) -> Path:
    """The built ``liquid_memory/_C`` extension of the checkout (``scripts/setup.sh`` builds it in place)."""
    found = sorted((repo / "src" / "liquid_memory").glob("_C*.so"))
    if not found:
        raise UsageError("no built liquid_memory/_C*.so in the checkout: run scripts/setup.sh, or pass --kernel-lib")
    return found[-1]


def write_dist_public(vk: VendorKey, repo: Path, built: list[tuple[dict[str, object], bytes]], home: Path,
                      *, kernel_library: Path | None = None) -> None:  # fmt: skip
    """Replace ``repo/dist_public`` with encrypted artifacts (and kernel library), metadata, revocation list."""
    dist = repo / "dist_public"
    dist.mkdir(exist_ok=True)
    for old in dist.iterdir():  # only this release's outputs: everything under dist_public/ is signed and shipped
        if old.is_dir() and not old.is_symlink():
            shutil.rmtree(old)
        else:
            old.unlink()
    if kernel_library is not None:
        write_kernel_library(vk, dist, kernel_library)
    ckid, key = vk.content_key_for("kernel", __version__)
    entries = []
    for info, plaintext in built:
        name = str(info["name"])
        (dist / f"{name}.enc").write_bytes(encrypt(plaintext, key, ckid, name=name, version=__version__))
        entries.append({**info, "file": f"dist_public/{name}.enc"})
    meta = {
        "format": METADATA_FORMAT,
        "product": PRODUCT,
        "version": __version__,
        "torch": torch.__version__,
        "source_commit": source_commit(repo),
        "content_key_id": ckid,
        "encryption": "LMAE v1: AES-256-GCM, 1 MiB chunks, AAD binds name and version",
        "artifacts": sorted(entries, key=lambda e: str(e["name"])),
    }
    (dist / "AOTI_METADATA.json").write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n")
    rl = home / "revocations.lmr"
    text = rl.read_text() if rl.exists() else sign_revocation_list(vk, [], 0) + "\n"
    (dist / "revocations.lmr").write_text(text)


def next_sequence(home: Path) -> int:
    """The vendor's monotonic release sequence (``home/release-seq.json``), incremented per signed manifest."""
    path = home / "release-seq.json"
    seq = (json.loads(path.read_text())["sequence"] if path.exists() else 0) + 1
    home.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"sequence": seq}) + "\n")
    return seq


def _revocation_seq(data: bytes) -> int:
    payload = data.decode("ascii").strip()[len("lmr1.") :].split(".")[0]
    return int(json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))["seq"])


def render_signed(vk: VendorKey, rows: list[Row], *, scope: str, sequence: int, revocation_seq: int,
                  valid_days: int = 730, now: int | None = None) -> bytes:  # fmt: skip
    """Sign a manifest over ``rows`` with the trusted comment binding version, scope and sequences."""
    now = int(time.time()) if now is None else now
    body = render_body(rows, product=PRODUCT, version=__version__)
    comment = {"product": PRODUCT, "version": __version__, "issued": now, "expires": now + valid_days * 86400,
               "kid": vk.kid, "files": len(rows), "sequence": sequence, "scope": scope,
               "revocation_seq": revocation_seq}  # fmt: skip
    comment_bytes = json.dumps(comment, sort_keys=True, separators=(",", ":")).encode("ascii")
    return assemble(body, comment_bytes, vk.sign(manifest_message(body, comment_bytes)))


def sign_manifest(vk: VendorKey, root: Path, *, sequence: int, valid_days: int = 730, now: int | None = None) -> bytes:
    """Write ``root/MANIFEST.md`` (scope ``source``) listing every file under ``root/dist_public``."""
    rows = []
    for path in sorted((root / "dist_public").rglob("*")):
        if path.is_symlink():
            raise UsageError(f"{path} is a symlink; a distribution may not contain symlinks")
        if path.is_file():
            data = path.read_bytes()
            rows.append(Row(path.relative_to(root).as_posix(), len(data), hashlib.sha256(data).hexdigest()))
    rl_seq = _revocation_seq((root / "dist_public" / "revocations.lmr").read_bytes())
    data = render_signed(vk, rows, scope="source", sequence=sequence, revocation_seq=rl_seq,
                         valid_days=valid_days, now=now)  # fmt: skip
    (root / "MANIFEST.md").write_bytes(data)
    return data


def finalize_wheel(vk: VendorKey, wheel: Path, *, sequence: int, valid_days: int = 730,
                   source: Path | None = None) -> bytes:  # fmt: skip
    """Sign an every-file manifest (scope ``wheel``) over a built wheel, add it, and rewrite RECORD.

    Every member but RECORD is listed (RECORD lists the manifest's hash, so it cannot be inside it; verify
    checks that RECORD names exactly the wheel's members instead). A release (any key but the development
    identity) is first checked against the positive list of what a release wheel may contain, with ``source``
    the exported tree it was built from (``wheel_contents``); a refusal signs nothing.
    """
    with zipfile.ZipFile(wheel) as src:
        members = [(i, src.read(i)) for i in src.infolist() if not i.filename.endswith("/")]
    record = [i.filename for i, _ in members if i.filename.endswith(".dist-info/RECORD")]
    if len(record) != 1:
        raise UsageError(f"{wheel} has no single dist-info/RECORD")
    manifest_name = "liquid_memory/MANIFEST.md"
    if not is_development_key(vk.kid):
        if source is None:
            raise UsageError("a release wheel is checked against the exported tree it was built from: pass source")
        # RECORD and an earlier manifest are replaced below, never shipped as they are
        check_release_wheel([(i.filename, d) for i, d in members if i.filename not in (record[0], manifest_name)],
                            source, vk)  # fmt: skip
    files = [(i, d) for i, d in members if i.filename not in (record[0], manifest_name)]
    rows = [Row(i.filename, len(d), hashlib.sha256(d).hexdigest()) for i, d in files]
    rl = next(d for i, d in files if i.filename == "liquid_memory/dist_public/revocations.lmr")
    manifest = render_signed(vk, rows, scope="wheel", sequence=sequence, revocation_seq=_revocation_seq(rl),
                             valid_days=valid_days)  # fmt: skip
    entries = [*((i.filename, d) for i, d in files), (manifest_name, manifest)]
    lines = [f"{n},sha256={base64.urlsafe_b64encode(hashlib.sha256(d).digest()).rstrip(b'=').decode()},{len(d)}"
             for n, d in entries]  # fmt: skip
    lines.append(f"{record[0]},,")
    tmp = wheel.with_suffix(".tmp")
    with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED) as dst:
        for name, data in [*entries, (record[0], ("\n".join(lines) + "\n").encode())]:
            info = zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))
            info.external_attr = (0o100755 if name.endswith(".so") else 0o100644) << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            dst.writestr(info, data)
    os.replace(tmp, wheel)
    return manifest


def build_wheel(vk: VendorKey, source: Path, out_dir: Path, *, release_build: bool) -> Path:
    """``python -m build --wheel --no-isolation`` in ``source`` (a fresh export); a release bakes in only ``vk``'s
    public key. The wheel is written to ``out_dir`` (a fresh folder: no older wheel can be taken for it)."""
    env = dict(os.environ)
    env.setdefault("MAX_JOBS", "2")  # the C++ extension build: stay within a small machine's cores
    if release_build and is_development_key(vk.kid):
        raise UsageError("the DEVELOPMENT identity can never sign a release build (use --dev for a development wheel)")
    with tempfile.TemporaryDirectory() as tmp:
        if release_build:
            root_file = Path(tmp) / "trust_root.json"
            root_file.write_text(
                json.dumps({"build": "release", "vendor_keys": {vk.kid: vk.trust_entry().split(":")[1]}})
            )
            env["LM_RELEASE_TRUST_ROOT"] = str(root_file)
        else:
            env.pop("LM_RELEASE_TRUST_ROOT", None)
        cmd = [sys.executable, "-m", "build", "--wheel", "--no-isolation", "--outdir", str(out_dir), str(source)]
        subprocess.run(cmd, env=env, check=True, stdout=subprocess.DEVNULL)
    wheels = sorted(out_dir.glob("liquid_memory-*.whl"))
    if len(wheels) != 1:
        raise UsageError(f"the build wrote {len(wheels)} wheels into {out_dir}, expected one")
    return wheels[0]


def release_wheel(vk: VendorKey, repo: Path, wheel_dir: Path, *, release_build: bool, sequence: int,
                  valid_days: int = 730) -> Path:  # fmt: skip
    """Export the tracked tree (+ this release's dist_public/ and MANIFEST.md) into a fresh temporary folder,
    build the wheel there, check and sign it, and only then move it into ``wheel_dir``.

    Never builds inside the checkout: setuptools would reuse its ``build/`` (stale outputs of any earlier build).
    """
    with tempfile.TemporaryDirectory(prefix="lm-release-") as tmp:
        source, out = Path(tmp) / "src", Path(tmp) / "wheel"
        source.mkdir()
        out.mkdir()
        export_tree(repo, source)
        wheel = build_wheel(vk, source, out, release_build=release_build)
        finalize_wheel(vk, wheel, sequence=sequence, valid_days=valid_days, source=source)
        wheel_dir.mkdir(parents=True, exist_ok=True)
        target = wheel_dir / wheel.name
        shutil.move(str(wheel), str(target))
    return target
