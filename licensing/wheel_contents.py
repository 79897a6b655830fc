"""What a release wheel may contain: a positive list, checked by ``finalize_wheel`` before anything is signed.

Every member of a release wheel must be one of:
- a source file of the exported tree, byte for byte, where setuptools puts it (``src/liquid_memory/X`` ->
  ``liquid_memory/X``, ``proxy/X`` -> ``liquid_memory_proxy/X``, the package dirs of ``setup.py``);
- a file of the release's own ``dist_public/`` (encrypted artifacts and kernel library, their metadata, the
  revocation list), byte for byte -> ``liquid_memory/dist_public/X``;
- the generated trust root ``liquid_memory/licensing/_trust_root.py``: ``BUILD = "release"`` and exactly this
  vendor's public key, nothing else;
- the dist-info setuptools writes (METADATA, WHEEL, entry_points.txt, top_level.txt, RECORD; licence files
  equal to tracked ones).
Refused whatever else holds, each with its own reason: a shared library, the vendor tool, the development
identity (by name or by content: its key file, passphrase or public key), Triton kernel source, ``.pth``
files and ``.data/`` trees.
"""

from __future__ import annotations

import ast
import json
import re
from pathlib import Path

from liquid_memory_vendor.keystore import VendorKey

from liquid_memory import __version__
from liquid_memory.errors import ReleaseContentRefused
from liquid_memory.licensing.encoding import b64d, b64e

PACKAGE_SOURCES = {"liquid_memory": "src/liquid_memory", "liquid_memory_proxy": "proxy"}  # setup.py PACKAGE_DIRS
TRUST_ROOT = "liquid_memory/licensing/_trust_root.py"
DIST_INFO = f"liquid_memory-{__version__}.dist-info"
GENERATED_DIST_INFO = frozenset({"METADATA", "WHEEL", "entry_points.txt", "top_level.txt", "RECORD"})
_SHARED_LIBRARY = re.compile(r"\.(so|dylib|dll|pyd)(\.[0-9]+)*$")
_TRITON_SOURCE = (b"@triton.jit", b"import triton.language")
VENDOR_NAMES = ("liquid_memory_vendor", "lm-vendor")


def development_identity_markers() -> list[bytes]:
    """Byte strings only the development identity's files hold: its key file, sealed secret, passphrase, key."""
    from liquid_memory_vendor.dev import DEV_KEY_FILE, DEV_PASSPHRASE_FILE

    doc = json.loads(DEV_KEY_FILE.read_text(encoding="utf-8"))
    passphrase = DEV_PASSPHRASE_FILE.read_bytes().rstrip(b"\r\n")
    public_b64 = str(doc["public_key"])
    public = b64d(public_b64, "development public key", lambda m, r: ValueError(m), size=32)
    return [str(doc["sealed"]).encode(), passphrase, public_b64.encode(), public]


def _refuse(name: str, why: str, reason: str) -> ReleaseContentRefused:
    return ReleaseContentRefused(f"{name}: {why}; nothing was signed", reason=reason)


def _forbidden(name: str, data: bytes, markers: list[bytes]) -> ReleaseContentRefused | None:
    """The named hazards, whatever the positive list would say."""
    parts = name.split("/")
    if _SHARED_LIBRARY.search(name):
        return _refuse(name, "a shared library in the clear (a release ships kernels only encrypted)", "shared-library")
    if any(p.startswith("liquid_memory_vendor") for p in parts):
        return _refuse(name, "part of the vendor tool (its own distribution, never in a release)", "vendor-tool")
    if any("dev_identity" in p or "DEVELOPMENT_PASSPHRASE" in p for p in parts) or any(m in data for m in markers):
        return _refuse(name, "holds the development identity (its key, passphrase or public key)", "dev-identity")
    if any(p == "triton_scan" for p in parts) or (name.endswith(".py") and any(m in data for m in _TRITON_SOURCE)):
        return _refuse(name, "Triton kernel source (a CPU release leaves it out)", "triton-source")
    if name.endswith(".pth") or any(p.endswith(".data") for p in parts[:1]):
        return _refuse(name, "a .pth file or .data/ tree (installed outside the package)", "outside-package")
    return None


def _trust_root_ok(data: bytes, vk: VendorKey) -> bool:
    """Exactly a docstring, ``BUILD = "release"`` and ``VENDOR_KEYS`` = this vendor's one key."""
    try:
        tree = ast.parse(data.decode("utf-8"))
    except (UnicodeDecodeError, SyntaxError):
        return False
    values: dict[str, object] = {}
    for node in tree.body:
        if isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant) and isinstance(node.value.value, str):
            continue
        if isinstance(node, ast.Assign) and len(node.targets) == 1:
            target = node.targets[0]
        elif isinstance(node, ast.AnnAssign) and node.value is not None:
            target = node.target
        else:
            return False
        if not isinstance(target, ast.Name):
            return False
        try:
            values[target.id] = ast.literal_eval(node.value)
        except ValueError:
            return False
    return values == {"BUILD": "release", "VENDOR_KEYS": {vk.kid: b64e(vk.public_key)}}


def _dist_info_ok(leaf: str, data: bytes) -> str | None:
    """Why a generated dist-info file is not a release's (None when it is)."""
    text = data.decode("utf-8", errors="replace")
    if leaf == "METADATA" and any(line.startswith("Summary: DEVELOPMENT BUILD") for line in text.splitlines()):
        return "metadata of a development build"
    if leaf in ("entry_points.txt", "top_level.txt") and any(v in text for v in VENDOR_NAMES):
        return "names the vendor tool"
    return None


def check_release_wheel(members: list[tuple[str, bytes]], source: Path, vk: VendorKey) -> None:
    """Raise ``ReleaseContentRefused`` unless every member is on the positive list (module docstring)."""
    markers = development_identity_markers()
    for name, data in members:
        problem = _forbidden(name, data, markers)
        if problem is not None:
            raise problem
        parts = name.split("/")
        if name == TRUST_ROOT:
            if not _trust_root_ok(data, vk):
                raise _refuse(name, f"not the release trust root of vendor key {vk.kid} alone", "trust-root")
            continue
        if parts[0] == DIST_INFO:
            leaf = "/".join(parts[1:])
            if leaf in GENERATED_DIST_INFO:
                why = _dist_info_ok(leaf, data)
                if why:
                    raise _refuse(name, why, "dist-info")
                continue
            if parts[1:2] == ["licenses"] and _same(source / "/".join(parts[2:]), data):
                continue
            raise _refuse(name, "a dist-info file setuptools does not write for this project", "not-listed")
        if parts[0] == "liquid_memory" and parts[1:2] == ["dist_public"]:
            if _same(source / "/".join(parts[1:]), data):
                continue
            raise _refuse(name, "not the release's own dist_public/ file", "not-listed")
        src_dir = PACKAGE_SOURCES.get(parts[0])
        if src_dir is not None and len(parts) > 1 and _same(source / src_dir / "/".join(parts[1:]), data):
            continue
        raise _refuse(name, "not produced by this release's build from the exported tracked sources", "not-listed")


def _same(path: Path, data: bytes) -> bool:
    try:
        return path.is_file() and not path.is_symlink() and path.read_bytes() == data
    except OSError:
        return False
