"""The installed distribution this process trusts: verified file by file once per process, then read back
with every byte checked against its manifest row.

Shared by the AOTInductor loader (``loader.py``) and the encrypted kernel library (``native.py``).
"""

from __future__ import annotations

import hashlib
import threading
from pathlib import Path

from liquid_memory.errors import ArtifactNotFound, ArtifactTampered, DistributionUnavailable
from liquid_memory.licensing.trust import is_release_build
from liquid_memory.manifest.format import Row
from liquid_memory.manifest.sources import DirSource
from liquid_memory.manifest.verify import verify_path
from liquid_memory.version import __version__

_lock = threading.RLock()
_verified: dict[str, dict[str, Row]] = {}
_sources: dict[str, DirSource] = {}


def installation_root() -> Path:
    """The distribution this process trusts, verified file by file once per process (typed refusals)."""
    from liquid_memory.manifest.distribution import distribution_root

    root = distribution_root()
    verified_rows(root)
    return root


def verified_rows(root: Path) -> dict[str, Row]:
    """Verify the whole distribution once per process; return its rows by path (relative to the package)."""
    key = str(root.resolve())
    with _lock:
        if key not in _verified:
            report = verify_path(root, expected_version=__version__)
            report.raise_first()
            assert report.manifest is not None
            if is_release_build() and report.manifest.scope != "wheel":
                raise DistributionUnavailable("a release install needs its wheel's every-file manifest",
                                              reason="scope")  # fmt: skip
            prefix = report.manifest.prefix
            _verified[key] = {r.path[len(prefix) :]: r for r in report.rows if r.path.startswith(prefix)}
            _sources[key] = DirSource(root)
            _sources[key].bind(report.manifest.scope, [r.path for r in report.rows])
        return _verified[key]


def read_checked(root: Path, path: str) -> bytes:
    """Read a listed file and check it against its manifest row (the bytes we use are the bytes we hash)."""
    row = verified_rows(root).get(path)
    if row is None:
        raise ArtifactNotFound(f"{path} is not listed in the distribution's MANIFEST.md")
    data = _sources[str(root.resolve())].open_bytes(row.path)
    if len(data) != row.size or hashlib.sha256(data).hexdigest() != row.sha256:
        raise ArtifactTampered(f"{path} changed after verification", reason="hash")
    return data


def reset() -> None:
    """Forget the verified distributions (tests)."""
    with _lock:
        _verified.clear()
        _sources.clear()
