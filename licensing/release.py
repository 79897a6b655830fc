"""``lm-vendor release``: encrypt the artifacts, write dist_public/ + signed MANIFEST.md, build the wheel.

The plaintext packages come from ``tools/build_artifacts.py`` (or are built here). For a real vendor
key the wheel is a *release* build: ``LM_RELEASE_TRUST_ROOT`` points setup.py's build hook at a trust
root holding only that vendor's public key, so the wheel trusts nothing else. With the committed
DEVELOPMENT identity the wheel stays a development build.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
from liquid_memory_vendor.issue import sign_revocation_list
from liquid_memory_vendor.keystore import VendorKey

from liquid_memory import __version__
from liquid_memory.artifacts.crypto import encrypt
from liquid_memory.errors import UsageError
from liquid_memory.manifest.format import Row, assemble, manifest_message, render_body

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


def write_dist_public(vk: VendorKey, repo: Path, built: list[tuple[dict[str, object], bytes]], home: Path) -> None:
    """Replace ``repo/dist_public`` with encrypted artifacts, metadata and the revocation list."""
    dist = repo / "dist_public"
    dist.mkdir(exist_ok=True)
    for old in dist.iterdir():
        if old.is_file() or old.is_symlink():
            old.unlink()
    ckid = vk.current_content_key
    key = vk.content_keys[ckid]
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


def sign_manifest(vk: VendorKey, root: Path, *, valid_days: int = 730, now: int | None = None) -> bytes:
    """Write ``root/MANIFEST.md`` listing every file under ``root/dist_public`` and return its bytes."""
    rows = []
    for path in sorted((root / "dist_public").rglob("*")):
        if path.is_symlink():
            raise UsageError(f"{path} is a symlink; a distribution may not contain symlinks")
        if path.is_file():
            data = path.read_bytes()
            rows.append(Row(path.relative_to(root).as_posix(), len(data), hashlib.sha256(data).hexdigest()))
    now = int(time.time()) if now is None else now
    body = render_body(rows, product=PRODUCT, version=__version__)
    comment = {"product": PRODUCT, "version": __version__, "issued": now, "expires": now + valid_days * 86400,
               "kid": vk.kid, "files": len(rows)}  # fmt: skip
    comment_bytes = json.dumps(comment, sort_keys=True, separators=(",", ":")).encode("ascii")
    data = assemble(body, comment_bytes, vk.sign(manifest_message(body, comment_bytes)))
    (root / "MANIFEST.md").write_bytes(data)
    return data


def build_wheel(vk: VendorKey, repo: Path, out_dir: Path, *, release_build: bool) -> Path:
    """``python -m build --wheel --no-isolation``; a release build bakes in only ``vk``'s public key."""
    env = dict(os.environ)
    env.setdefault("MAX_JOBS", "2")  # the C++ extension build: stay within a small machine's cores
    with tempfile.TemporaryDirectory() as tmp:
        if release_build:
            root_file = Path(tmp) / "trust_root.json"
            root_file.write_text(
                json.dumps({"build": "release", "vendor_keys": {vk.kid: vk.trust_entry().split(":")[1]}})
            )
            env["LM_RELEASE_TRUST_ROOT"] = str(root_file)
        else:
            env.pop("LM_RELEASE_TRUST_ROOT", None)
        before = set(out_dir.glob("*.whl")) if out_dir.exists() else set()
        cmd = [
            sys.executable,
            "-m",
            "build",
            "--wheel",
            "--no-isolation",
            "--outdir",
            str(out_dir),
            str(repo),
        ]
        subprocess.run(cmd, env=env, check=True, stdout=subprocess.DEVNULL)
    wheels = sorted(set(out_dir.glob("*.whl")) - before) or sorted(out_dir.glob("liquid_memory-*.whl"))
    return wheels[-1]
