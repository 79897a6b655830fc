"""Verify a distribution against its signed MANIFEST.md and report every problem found."""

from __future__ import annotations

import hashlib
import time
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

from liquid_memory.errors import (
    LiquidMemoryError,
    ManifestError,
    ManifestExpired,
    ManifestExtraFile,
    ManifestFileMissing,
    ManifestHashMismatch,
    ManifestInvalid,
    ManifestMissing,
    ManifestNotRegularFile,
    ManifestRollback,
    ManifestSignatureInvalid,
    ManifestSizeMismatch,
    ManifestSymlink,
    ManifestUnsafePath,
    ManifestVersionMismatch,
)
from liquid_memory.licensing.encoding import verify_raw
from liquid_memory.licensing.revocation import parse_revocation_list
from liquid_memory.licensing.seen import newest_seen, remember
from liquid_memory.licensing.trust import is_development_key, is_release_build, trusted_keys
from liquid_memory.manifest.format import Manifest, Row, check_path, parse_manifest, signed_rows
from liquid_memory.manifest.sources import DirSource, WheelSource
from liquid_memory.version import __version__

Source = DirSource | WheelSource
PRODUCT = "liquid-memory"
SEEN_FILE = "manifest-seq.json"
REVOCATION_PATH = "dist_public/revocations.lmr"


@dataclass
class Report:
    """Outcome of a verification: ``ok`` only if no problem was found."""

    target: str
    manifest: Manifest | None = None
    rows: tuple[Row, ...] = ()
    problems: list[LiquidMemoryError] = field(default_factory=list)
    development: bool = False  # the trust used (key or build) is the public development identity
    pinned: bool = False  # trusted exactly one key the caller passed (``--vendor-key``), not this build's

    @property
    def ok(self) -> bool:
        return not self.problems and self.manifest is not None

    def raise_first(self) -> None:
        if self.problems:
            raise self.problems[0]

    def to_dict(self) -> dict[str, object]:
        c = self.manifest.comment if self.manifest else {}
        return {
            "target": self.target,
            "ok": self.ok,
            "product": c.get("product"),
            "version": c.get("version"),
            "sequence": c.get("sequence"),
            "scope": c.get("scope"),
            "vendor_key_id": c.get("kid"),
            "expires": c.get("expires"),
            "development_identity": self.development,
            "trust": "vendor-key" if self.pinned else "build",
            "files": [{"path": r.path, "size": r.size, "sha256": r.sha256} for r in self.rows],
            "problems": [p.to_dict() for p in self.problems],
        }


def open_source(path: Path) -> Source:
    """A wheel file, a distribution root, a ``dist_public/`` folder, or an installed package."""
    if path.is_file():
        if zipfile.is_zipfile(path):
            return WheelSource(path)
        raise ManifestInvalid(f"{path} is neither a directory nor a wheel", reason="bad-target")
    if (path / "MANIFEST.md").exists() or (path / "MANIFEST.md").is_symlink():
        return DirSource(path)
    if path.name == "dist_public" and (path.parent / "MANIFEST.md").exists():
        return DirSource(path.parent)
    raise ManifestMissing(f"no MANIFEST.md at {path} (nor in its parent for a dist_public/ folder)")


VENDOR_KEY_REMEDY = (
    "to check a vendor's release from any environment, pass the vendor's published key: "
    "liquid-memory verify PATH --vendor-key KEY (the line `lm-vendor public-key` prints, or a file holding it)"
)


def check_signature(manifest: Manifest, trusted: dict[str, bytes], now: float, *, pinned: bool = False,
                    unknown_key_remedy: str | None = None) -> None:  # fmt: skip
    """Signature by a trusted key, product, expiry. ``pinned``: ``trusted`` is the one key a reviewer passed."""
    kid = manifest.kid
    if kid not in trusted:
        if pinned:
            raise ManifestSignatureInvalid(
                f"manifest signed by vendor key {kid}, but --vendor-key is key {', '.join(sorted(trusted))}",
                reason="unknown-key",
                remedy="this is not that vendor's release (or not its key): do not install it",
            )
        raise ManifestSignatureInvalid(
            f"manifest signed by vendor key {kid}, not trusted by this build", reason="unknown-key",
            remedy=unknown_key_remedy,
        )  # fmt: skip
    if not verify_raw(trusted[kid], manifest.message(), manifest.signature):
        raise ManifestSignatureInvalid("manifest signature does not verify (edited or forged)", reason="bad-signature")
    if manifest.comment["product"] != PRODUCT:
        raise ManifestInvalid(f"manifest is for product {manifest.comment['product']!r}", reason="product")
    if now >= int(manifest.comment["expires"]):  # type: ignore[arg-type]
        raise ManifestExpired("manifest signature has expired; download the current distribution")


def check_sequence(manifest: Manifest) -> None:
    """Refuse a release older than the newest one this machine has seen from the same vendor key."""
    seq, newest = int(manifest.comment["sequence"]), newest_seen(SEEN_FILE, manifest.kid)  # type: ignore[arg-type]
    if seq < newest:
        raise ManifestRollback(f"manifest release sequence {seq} is older than sequence {newest} already seen "
                               "on this machine (rollback to an older release)", reason="rollback")  # fmt: skip


def _entry_problem(entry_path: str, kind: str, scope: str) -> LiquidMemoryError | None:
    if kind == "symlink":
        return ManifestSymlink(f"{entry_path} is a symlink", reason="symlink")
    if kind != "file":
        return ManifestNotRegularFile(f"{entry_path} is not a regular file (FIFO, socket or device)", reason="kind")
    try:
        check_path(entry_path, scope)
    except ManifestError as exc:
        return exc
    return None


def check_files(source: Source, rows: tuple[Row, ...], report: Report, scope: str = "source") -> None:
    """Compare entries with rows: missing, non-regular, odd spelling, wrong size or hash, extra."""
    listed = {r.path: r for r in rows}
    present = {}
    reported: set[str] = set()
    if isinstance(source, DirSource):  # an installed release: what its RECORD says pip wrote, wherever it went
        for path, problem in source.installed_problems():
            if path not in reported:
                reported.add(path)
                report.problems.append(problem)
    for entry in source.entries():
        present[entry.path] = entry
        problem = _entry_problem(entry.path, entry.kind, scope)
        if problem is not None:
            report.problems.append(problem)
        elif entry.path not in listed and entry.path not in reported:
            report.problems.append(ManifestExtraFile(f"{entry.path} is not listed in the manifest", reason="extra"))
    if isinstance(source, WheelSource):
        for dup in source.duplicate_members():
            report.problems.append(ManifestUnsafePath(f"{dup} appears twice in the wheel", reason="duplicate"))
    for row in rows:
        entry = present.get(row.path)
        if entry is None or entry.kind != "file":
            if entry is None:
                report.problems.append(ManifestFileMissing(f"{row.path} is listed but missing", reason="missing"))
            continue
        if entry.size != row.size:
            report.problems.append(
                ManifestSizeMismatch(f"{row.path}: size {entry.size} bytes, manifest says {row.size}", reason="size")
            )
            continue
        try:
            data = source.open_bytes(row.path)
        except ManifestError as exc:
            report.problems.append(exc)
            continue
        if len(data) != row.size:
            report.problems.append(ManifestSizeMismatch(f"{row.path}: size changed while reading", reason="size"))
        elif hashlib.sha256(data).hexdigest() != row.sha256:
            report.problems.append(
                ManifestHashMismatch(f"{row.path}: SHA-256 differs from the manifest", reason="hash")
            )
    if isinstance(source, WheelSource) and scope == "wheel":
        check_record(source, listed, report)


def check_record(source: WheelSource, listed: dict[str, Row], report: Report) -> None:
    """RECORD (pip uses it to uninstall) must name exactly the wheel's members: nothing outside it."""
    paths = source.record_paths()
    members = {i.filename for i in source.members if not i.filename.endswith("/")}
    if paths is None or set(paths) != members:
        report.problems.append(ManifestInvalid("the wheel's RECORD does not list exactly its files", reason="record"))


def _metadata_version(source: Source, rows: tuple[Row, ...]) -> str | None:
    meta = [r.path for r in rows if r.path.endswith(".dist-info/METADATA") and r.path.count("/") == 1]
    if len(meta) != 1:
        return None
    for line in source.open_bytes(meta[0]).decode("utf-8", errors="replace").splitlines():
        if line.startswith("Version:"):
            return line.split(":", 1)[1].strip()
        if not line:
            break
    return None


def check_bindings(source: Source, manifest: Manifest, rows: tuple[Row, ...], trusted: dict[str, bytes],
                   expected_version: str | None) -> None:  # fmt: skip
    """The manifest's version is the package's; its revocation list is the one it signed (same seq)."""
    version = str(manifest.comment["version"])
    package_version = _metadata_version(source, rows) if manifest.scope == "wheel" else __version__
    if manifest.scope == "wheel" and package_version is None:
        raise ManifestVersionMismatch("a wheel manifest must list exactly one dist-info METADATA", reason="metadata")
    for other in (package_version, expected_version):
        if other is not None and other != version:
            raise ManifestVersionMismatch(f"manifest is for liquid-memory {version}, the package is {other}",
                                          reason="version")  # fmt: skip
    rl_path = manifest.prefix + REVOCATION_PATH
    if rl_path not in {r.path for r in rows}:
        raise ManifestInvalid(f"manifest lists no revocation list ({rl_path})", reason="no-revocation-list")
    rl = parse_revocation_list(source.open_bytes(rl_path).decode("utf-8", errors="replace"), trusted)
    if rl.seq != manifest.comment["revocation_seq"] or rl.kid != manifest.kid:
        raise ManifestInvalid(f"revocation list seq {rl.seq} is not the one the manifest binds "
                              f"({manifest.comment['revocation_seq']})", reason="revocation-binding")  # fmt: skip


def verify_path(
    path: Path | str,
    *,
    now: float | None = None,
    trusted: dict[str, bytes] | None = None,
    expected_version: str | None = None,
    remember_sequence: bool = True,
    vendor_key: tuple[str, bytes] | None = None,
    unknown_key_remedy: str | None = None,
) -> Report:
    """Verify a distribution; never raises for a bad distribution (problems go into the report).

    ``vendor_key`` (key id, public key; ``liquid-memory verify --vendor-key``) trusts exactly that key for
    this one verification, whatever this build trusts, and remembers nothing; the development warning then
    depends only on whether that key is the development identity. ``unknown_key_remedy`` replaces the remedy
    of a manifest signed by a key this build does not trust (the CLI names ``--vendor-key`` there).
    """
    if vendor_key is not None:
        trusted, remember_sequence = {vendor_key[0]: vendor_key[1]}, False
    report = Report(target=str(path), development=vendor_key is None and not is_release_build(),
                    pinned=vendor_key is not None)  # fmt: skip
    now = time.time() if now is None else now
    try:
        trusted = trusted_keys() if trusted is None else trusted
        source = open_source(Path(path))
        manifest = parse_manifest(source.manifest_bytes())
        check_signature(manifest, trusted, now, pinned=vendor_key is not None, unknown_key_remedy=unknown_key_remedy)
        report.development = report.development or is_development_key(manifest.kid)
        report.manifest = manifest
        report.rows = signed_rows(manifest)
        source.bind(manifest.scope, [r.path for r in report.rows])
        check_sequence(manifest)
    except LiquidMemoryError as exc:
        report.manifest = None
        report.problems.append(exc)
        return report
    check_files(source, report.rows, report, manifest.scope)
    if not report.problems:
        try:
            check_bindings(source, manifest, report.rows, trusted, expected_version)
        except LiquidMemoryError as exc:
            report.problems.append(exc)
    if report.ok and remember_sequence:
        remember(SEEN_FILE, manifest.kid, int(manifest.comment["sequence"]))  # type: ignore[arg-type]
    return report
