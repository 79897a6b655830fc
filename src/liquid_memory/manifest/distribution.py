"""The distribution this process trusts, and the revocation list signed into it (docs/architecture.md §6).

Licence verification needs the distribution's revocation list; so a missing distribution, a deleted or
swapped revocation list, a redirected ``LM_DIST_ROOT`` in a release install, an older release (rollback)
or a manifest for another version all refuse with a typed error instead of skipping the check. This path
hashes one small file; the loader verifies *every* file before any native code loads (``verify_path``).
"""

from __future__ import annotations

import hashlib
import os
import time
from pathlib import Path

from liquid_memory.errors import (
    DistributionUnavailable,
    ManifestError,
    ManifestHashMismatch,
    ManifestVersionMismatch,
    RevocationListInvalid,
)
from liquid_memory.licensing.revocation import RevocationList, check_rollback, parse_revocation_list
from liquid_memory.licensing.seen import remember
from liquid_memory.licensing.trust import is_release_build
from liquid_memory.manifest.format import parse_manifest, signed_rows
from liquid_memory.manifest.locate import DIST_ENV, own_distribution_root
from liquid_memory.manifest.sources import DirSource
from liquid_memory.manifest.verify import REVOCATION_PATH, SEEN_FILE, check_sequence, check_signature
from liquid_memory.version import __version__


def distribution_root() -> Path:
    """The signed distribution of this installation; refuses when it is missing or (release) redirected."""
    own = own_distribution_root()
    env = os.environ.get(DIST_ENV)
    if env:
        if is_release_build() and (own is None or Path(env).resolve() != own.resolve()):
            raise DistributionUnavailable(f"{DIST_ENV} cannot redirect a release install to another distribution",
                                          reason="redirected")  # fmt: skip
        return Path(env)
    if own is None:
        raise DistributionUnavailable("no signed distribution (MANIFEST.md + dist_public/) beside the package",
                                      reason="missing")  # fmt: skip
    return own


def bound_revocation_list(trusted: dict[str, bytes], now: float | None = None) -> RevocationList:
    """Verify the manifest (signature, scope, version, sequence) and return the revocation list it binds."""
    root = distribution_root()
    source = DirSource(root)
    manifest = parse_manifest(source.manifest_bytes())
    check_signature(manifest, trusted, time.time() if now is None else now)
    rows = {r.path: r for r in signed_rows(manifest)}
    source.bind(manifest.scope, list(rows))
    if is_release_build() and manifest.scope != "wheel":
        raise DistributionUnavailable("a release install needs its wheel's every-file manifest", reason="scope")
    if manifest.comment["version"] != __version__:
        raise ManifestVersionMismatch(f"manifest is for liquid-memory {manifest.comment['version']}, this is "
                                      f"{__version__}", reason="version")  # fmt: skip
    check_sequence(manifest)
    row = rows.get(manifest.prefix + REVOCATION_PATH)
    if row is None:
        raise DistributionUnavailable("the signed manifest lists no revocation list", reason="no-revocation-list")
    try:
        data = source.open_bytes(row.path)
    except ManifestError:
        raise DistributionUnavailable(f"the revocation list {row.path} is missing or not a regular file",
                                      reason="revocation-list-missing") from None  # fmt: skip
    if len(data) != row.size or hashlib.sha256(data).hexdigest() != row.sha256:
        raise ManifestHashMismatch(f"{row.path}: SHA-256 differs from the manifest", reason="hash")
    rl = parse_revocation_list(data.decode("utf-8", errors="replace"), trusted)
    if rl.seq != manifest.comment["revocation_seq"] or rl.kid != manifest.kid:
        raise RevocationListInvalid("the revocation list is not the one the manifest binds", reason="binding")
    check_rollback(rl)
    remember(SEEN_FILE, manifest.kid, int(manifest.comment["sequence"]))  # type: ignore[arg-type]
    return rl
