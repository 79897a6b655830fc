"""Where the C++ kernel library (``liquid_memory._C``, the ``torch.ops.liquid_memory.*`` ops) comes from.

- Development builds (installed from source): ``csrc/`` is compiled into ``liquid_memory/_C``; it is
  imported as is — whoever has the source can build the kernels anyway.
- Release builds (``lm-vendor release``): the wheel holds no kernel in the clear. The library travels as
  ``dist_public/kernels/<name>.enc`` (LMAE, encrypted with the ``kernel`` content key of this release line)
  described by ``dist_public/KERNELS.json``. Only after a licence granting ``kernel`` verifies (dates,
  revocation, version) and the whole installation verifies against its signed manifest is it decrypted,
  hash-checked, written into a private 0700 folder, loaded with ``torch.ops.load_library`` and removed.

This module owns the KERNELS.json format (``lm-vendor release`` writes it through ``KERNELS_FORMAT``).
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import json
import os
import platform
import shutil
import sys
import tempfile
import threading
from pathlib import Path

import torch

from liquid_memory.errors import ArtifactIncompatible, ArtifactLoadFailed, ArtifactTampered
from liquid_memory.licensing import require_feature
from liquid_memory.licensing.trust import is_release_build
from liquid_memory.version import __version__

KERNELS_FORMAT = "lm-kernels-v1"
KERNELS_PATH = "dist_public/KERNELS.json"
_lock = threading.Lock()
_loaded = False
first_load_seconds: dict[str, float] = {}  # what the release path cost (decrypt + load), for benchmarks


def platform_tag() -> str:
    """The library links against this torch on this OS/CPU architecture."""
    return f"{sys.platform}-{platform.machine()}-torch{torch.__version__.split('+')[0]}"


def library_name() -> str:
    return f"liquid_memory_kernels-{platform_tag()}.so"


def kernel_library_present() -> bool:
    """True when this install has a kernel library at all (built, or shipped encrypted) — licence not checked."""
    if not is_release_build():
        return importlib.util.find_spec("liquid_memory._C") is not None
    from liquid_memory.manifest.locate import own_distribution_root

    root = own_distribution_root()
    return root is not None and (root / KERNELS_PATH).is_file()


def ensure_kernel_library() -> None:
    """Make ``torch.ops.liquid_memory.*`` exist. Release builds: on every call a licence granting ``kernel``
    is required (typed error otherwise); the first call decrypts and loads the library."""
    global _loaded
    if is_release_build():
        licence = require_feature("kernel")
    if _loaded:
        return
    with _lock:
        if _loaded:
            return
        if is_release_build():
            _load_encrypted(licence)
        else:
            importlib.import_module("liquid_memory._C")
        _loaded = True


def _select(meta: dict) -> dict:
    if meta.get("format") != KERNELS_FORMAT or meta.get("version") != __version__:
        raise ArtifactTampered("KERNELS.json has another format or product version", reason="bad-metadata")
    for lib in meta.get("libraries", []):
        if lib.get("platform") == platform_tag():
            return lib
    have = sorted(str(lib.get("platform")) for lib in meta.get("libraries", []))
    raise ArtifactIncompatible(f"no kernel library for {platform_tag()} in this release (has {have})",
                               reason="platform")  # fmt: skip


def _load_encrypted(licence) -> None:  # noqa: ANN001 - a verified Licence
    import time

    from liquid_memory.artifacts.crypto import decrypt
    from liquid_memory.artifacts.installation import installation_root, read_checked

    t0 = time.perf_counter()
    root = installation_root()  # verifies every file of the installation once per process
    try:
        lib = _select(json.loads(read_checked(root, KERNELS_PATH)))
        ckid, name = str(lib["content_key_id"]), str(lib["name"])
        blob = read_checked(root, str(lib["file"]))
        key = licence.content_key(ckid)  # refuses when this licence does not hold the kernel key of this line
        plaintext = decrypt(blob, key, name=name, version=__version__)
        sha, size = str(lib["plaintext_sha256"]), int(lib["plaintext_size"])
    except (KeyError, TypeError, ValueError):
        raise ArtifactTampered("KERNELS.json is malformed", reason="bad-metadata") from None
    if len(plaintext) != size or hashlib.sha256(plaintext).hexdigest() != sha:
        raise ArtifactTampered(f"{name}: decrypted bytes do not match KERNELS.json", reason="plaintext")
    t1 = time.perf_counter()
    folder = tempfile.mkdtemp(prefix="lm-kernels-")  # 0700
    try:
        path = Path(folder) / name
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o500)
        with os.fdopen(fd, "wb") as fh:
            fh.write(plaintext)
        try:
            torch.ops.load_library(str(path))
        except OSError as exc:
            raise ArtifactLoadFailed(f"{name} failed to load: {str(exc)[:200]}") from None
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    first_load_seconds.update(verify_decrypt=t1 - t0, load=time.perf_counter() - t1)
