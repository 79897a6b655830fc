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
    ManifestSignatureInvalid,
    ManifestSizeMismatch,
    ManifestSymlink,
)
from liquid_memory.licensing.encoding import verify_raw
from liquid_memory.licensing.trust import trusted_keys
from liquid_memory.manifest.format import Manifest, Row, check_path, parse_manifest, signed_rows
from liquid_memory.manifest.sources import DirSource, WheelSource

Source = DirSource | WheelSource
PRODUCT = "liquid-memory"


@dataclass
class Report:
    """Outcome of a verification: ``ok`` only if no problem was found."""

    target: str
    manifest: Manifest | None = None
    rows: tuple[Row, ...] = ()
    problems: list[LiquidMemoryError] = field(default_factory=list)

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
            "vendor_key_id": c.get("kid"),
            "expires": c.get("expires"),
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


def check_signature(manifest: Manifest, trusted: dict[str, bytes], now: float) -> None:
    kid = manifest.kid
    if kid not in trusted:
        raise ManifestSignatureInvalid(
            f"manifest signed by vendor key {kid}, not trusted by this build", reason="unknown-key"
        )
    if not verify_raw(trusted[kid], manifest.message(), manifest.signature):
        raise ManifestSignatureInvalid("manifest signature does not verify (edited or forged)", reason="bad-signature")
    if manifest.comment["product"] != PRODUCT:
        raise ManifestInvalid(f"manifest is for product {manifest.comment['product']!r}", reason="product")
    if now >= int(manifest.comment["expires"]):  # type: ignore[arg-type]
        raise ManifestExpired("manifest signature has expired; download the current distribution")


def check_files(source: Source, rows: tuple[Row, ...], report: Report) -> None:
    """Compare files with rows: missing, symlinked, wrong size, wrong hash, extra, unsafe."""
    listed = {r.path: r for r in rows}
    present = {}
    for entry in source.entries():
        present[entry.path] = entry
        if entry.is_symlink:
            report.problems.append(ManifestSymlink(f"{entry.path} is a symlink", reason="symlink"))
        elif entry.path not in listed:
            try:
                check_path(entry.path)
            except ManifestError as exc:
                report.problems.append(exc)
                continue
            report.problems.append(ManifestExtraFile(f"{entry.path} is not listed in the manifest", reason="extra"))
    for row in rows:
        entry = present.get(row.path)
        if entry is None or entry.is_symlink:
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


def verify_path(
    path: Path | str,
    *,
    now: float | None = None,
    trusted: dict[str, bytes] | None = None,
) -> Report:
    """Verify a distribution; never raises for a bad distribution (problems go into the report)."""
    report = Report(target=str(path))
    now = time.time() if now is None else now
    try:
        trusted = trusted_keys() if trusted is None else trusted
        source = open_source(Path(path))
        manifest = parse_manifest(source.manifest_bytes())
        check_signature(manifest, trusted, now)
        report.manifest = manifest
        report.rows = signed_rows(manifest)
    except LiquidMemoryError as exc:
        report.manifest = None
        report.problems.append(exc)
        return report
    check_files(source, report.rows, report)
    return report
