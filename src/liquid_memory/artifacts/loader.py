"""Licence -> manifest -> hashes -> decrypt in memory -> private temp file -> AOTInductor load.

Nothing native is loaded before the licence, the manifest signature, every listed file's hash and
the decrypted plaintext's hash have been checked. The plaintext ``.pt2`` exists on disk only inside a
0700 temp directory, as a 0600 file, for the duration of the load; it is removed even when loading fails.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import tempfile
import threading
from pathlib import Path

import torch

from liquid_memory.artifacts.cpu import supported_isas
from liquid_memory.artifacts.crypto import decrypt, read_key_id
from liquid_memory.artifacts.installation import installation_root, read_checked
from liquid_memory.artifacts.installation import reset as forget_verified_installations
from liquid_memory.artifacts.metadata import ArtifactInfo, Metadata, parse_metadata
from liquid_memory.errors import (
    ArtifactIncompatible,
    ArtifactLoadFailed,
    ArtifactTampered,
    LiquidMemoryError,
)
from liquid_memory.licensing import require_feature
from liquid_memory.version import __version__

METADATA_PATH = "dist_public/AOTI_METADATA.json"
_lock = threading.RLock()
_runners: dict[tuple[str, str], object] = {}
_selected: dict[tuple[str, str, int], tuple[object, ArtifactInfo]] = {}


def _root() -> Path:
    return installation_root()


def load_metadata(root: Path | None = None) -> Metadata:
    root = root or _root()
    return parse_metadata(read_checked(root, METADATA_PATH))


def torch_release() -> str:
    return torch.__version__.split("+")[0]


def select(meta: Metadata, dtype: str, head_dim: int) -> ArtifactInfo:
    """Best artifact for this dtype, head dim, CPU ISA and torch version, or a clear refusal."""
    if meta.torch.split("+")[0] != torch_release():
        msg = f"artifacts were built for torch {meta.torch}, this is torch {torch.__version__}"
        raise ArtifactIncompatible(msg, reason="torch-version")
    if meta.version != __version__:
        raise ArtifactIncompatible(f"artifacts belong to liquid-memory {meta.version}, this is {__version__}",
                                   reason="product-version")  # fmt: skip
    fitting = [a for a in meta.artifacts if a.dtype == dtype and a.head_dim == head_dim]
    if not fitting:
        have = sorted({f"{a.dtype}/d{a.head_dim}" for a in meta.artifacts})
        raise ArtifactIncompatible(f"no artifact for {dtype} with head dim {head_dim} (available: {have})",
                                   reason="no-variant")  # fmt: skip
    for isa in supported_isas():
        for art in fitting:
            if art.isa == isa:
                return art
    need, have = sorted({a.isa for a in fitting}), supported_isas() or "none"
    raise ArtifactIncompatible(f"artifacts need CPU ISA {need}, this CPU supports {have}", reason="cpu-isa")


@contextlib.contextmanager
def _private_tmpdir():
    path = tempfile.mkdtemp(prefix="lm-aoti-")  # mode 0700
    old = os.environ.get("TMPDIR")
    os.environ["TMPDIR"] = path  # the AOTI loader unpacks under TMPDIR: keep that private too
    try:
        yield Path(path)
    finally:
        if old is None:
            os.environ.pop("TMPDIR", None)
        else:
            os.environ["TMPDIR"] = old
        shutil.rmtree(path, ignore_errors=True)


def load_plaintext(info: ArtifactInfo, root: Path, meta: Metadata) -> bytes:
    licence = require_feature("kernel")
    blob = read_checked(root, info.file)
    ckid = read_key_id(blob)
    plaintext = decrypt(blob, licence.content_key(ckid), name=info.name, version=meta.version)
    if len(plaintext) != info.plaintext_size or hashlib.sha256(plaintext).hexdigest() != info.plaintext_sha256:
        raise ArtifactTampered(f"{info.name}: decrypted bytes do not match AOTI_METADATA.json", reason="plaintext")
    return plaintext


def get_runner(dtype: str, head_dim: int) -> tuple[object, ArtifactInfo]:
    """The loaded AOTI runner for (dtype, head_dim), loading it on first use (cached per process)."""
    require_feature("kernel")  # every call: dates (and, once per key, revocation) re-checked
    from liquid_memory.manifest.distribution import distribution_root

    fast = _selected.get((str(distribution_root()), dtype, head_dim))
    if fast is not None:  # loaded before from this (verified) distribution: no metadata re-read per call
        return fast
    root = _root()
    meta = load_metadata(root)
    info = select(meta, dtype, head_dim)
    key = (str(root), info.name)
    with _lock:
        runner = _runners.get(key)
        if runner is None:
            from liquid_memory.artifacts.native import ensure_kernel_library

            ensure_kernel_library()  # the packages call the C++ kernel op: its library must be loaded first
            plaintext = load_plaintext(info, root, meta)
            with _private_tmpdir() as tmp:
                path = tmp / info.name
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
                with os.fdopen(fd, "wb") as fh:
                    fh.write(plaintext)
                try:
                    runner = torch._inductor.aoti_load_package(str(path))
                except LiquidMemoryError:
                    raise
                except Exception as exc:  # the native loader raises RuntimeError with C++ text
                    raise ArtifactLoadFailed(f"{info.name} failed to load: {str(exc)[:200]}") from None
            _runners[key] = runner
        _selected[(str(root), dtype, head_dim)] = (runner, info)
    return runner, info


def reset() -> None:
    """Forget verified distributions and loaded runners (tests)."""
    forget_verified_installations()
    with _lock:
        _runners.clear()
        _selected.clear()
