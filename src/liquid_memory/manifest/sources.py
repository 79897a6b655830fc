"""Read-only views of a distribution: a directory tree or a wheel (zip) that is never extracted.

Both list *every* entry the manifest's scope covers, including the ones a manifest must never hold
(symlinks, FIFOs, sockets, devices, duplicate zip members), so the verifier can report them.
"""

from __future__ import annotations

import os
import stat
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from liquid_memory.errors import (
    LiquidMemoryError,
    ManifestFileMissing,
    ManifestInvalid,
    ManifestMissing,
    ManifestNotRegularFile,
    ManifestSymlink,
)
from liquid_memory.manifest.format import MAX_MANIFEST_BYTES, PACKAGE
from liquid_memory.manifest.record import (
    InstalledRecord,
    console_scripts,
    dist_info_of,
    installer_written,
    parse_record,
    pyc_source,
    record_problems,
)

MANIFEST_NAME = "MANIFEST.md"
MAX_RECORD_BYTES = 16 << 20


@dataclass(frozen=True)
class Entry:
    path: str  # relative POSIX path from the distribution root, exactly as found
    size: int
    kind: str  # "file" | "symlink" | "other" (FIFO, socket, device, ...)


def _kind(mode: int) -> str:
    if stat.S_ISLNK(mode):
        return "symlink"
    return "file" if stat.S_ISREG(mode) else "other"


def _zip_kind(info: zipfile.ZipInfo) -> str:
    """Zip members without Unix file-type bits (most writers, DOS attributes) are plain files."""
    mode = info.external_attr >> 16
    return "file" if stat.S_IFMT(mode) == 0 else _kind(mode)


class DirSource:
    """A distribution on disk: a source checkout / development install (scope ``source``: the manifest's
    folder holds ``dist_public/``) or an installed release (scope ``wheel``: the manifest sits in the
    installed ``liquid_memory/`` package and its paths are relative to ``site-packages``)."""

    def __init__(self, manifest_dir: Path) -> None:
        self.manifest_dir = manifest_dir
        self.root = manifest_dir
        self.scope = "source"
        self.label = str(manifest_dir)
        self.tops: set[str] = {"dist_public"}
        self.rows: set[str] = set()
        self.record = InstalledRecord()

    def manifest_bytes(self) -> bytes:
        path = self.manifest_dir / MANIFEST_NAME
        try:
            st = os.lstat(path)
        except OSError:
            raise ManifestMissing(f"no MANIFEST.md in {self.manifest_dir}") from None
        if stat.S_ISLNK(st.st_mode):
            raise ManifestSymlink(f"{path} is a symlink", reason="manifest-symlink")
        if not stat.S_ISREG(st.st_mode):
            raise ManifestNotRegularFile(f"{path} is not a regular file", reason="manifest-not-regular")
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | os.O_NONBLOCK)
        with os.fdopen(fd, "rb") as fh:
            return fh.read(MAX_MANIFEST_BYTES + 1)

    def bind(self, scope: str, rows_paths: list[str]) -> None:
        """Adopt the signed scope: which folder the listed paths are relative to, which folders to walk."""
        self.scope = scope
        if scope == "wheel":
            if self.manifest_dir.name != PACKAGE:
                raise ManifestInvalid(f"a wheel manifest must sit in a {PACKAGE}/ folder", reason="scope")
            self.root = self.manifest_dir.parent
            self.rows = set(rows_paths)
            self.tops = {p.split("/", 1)[0] for p in rows_paths} | {PACKAGE}
            dist_info = dist_info_of(rows_paths)
            where = f"{dist_info or '<name>.dist-info'}/RECORD"
            self.record = parse_record(self._read_optional(where, MAX_RECORD_BYTES) if dist_info else None, where)

    def _read_optional(self, rel: str, limit: int) -> bytes | None:
        """A file the installer wrote (not signed): its bytes, or None when absent, a link or too large."""
        try:
            data = self.open_bytes(rel)
        except LiquidMemoryError:
            return None
        return data if len(data) <= limit else None

    def installed_problems(self) -> list[tuple[str, LiquidMemoryError]]:
        """An installed release (scope ``wheel``): what its RECORD says was installed beyond the signed rows."""
        if self.scope != "wheel":
            return []
        dist_info = dist_info_of(sorted(self.rows))
        entry_points = self._read_optional(f"{dist_info}/entry_points.txt", 1 << 20) if dist_info else None
        scripts = console_scripts(entry_points or b"")

        def exists(rel: str) -> bool:
            return os.path.lexists(self.root / rel)

        return record_problems(self.record, self.rows, self.tops, scripts, exists)

    def entries(self) -> Iterator[Entry]:
        """Every entry under the covered top-level names (links not followed), plus installer caches skipped."""
        for top in sorted(self.tops):
            path = self.root / top
            try:
                st = os.lstat(path)
            except OSError:
                continue
            if not stat.S_ISDIR(st.st_mode):
                yield Entry(top, st.st_size, _kind(st.st_mode))
                continue
            for dirpath, dirnames, filenames in os.walk(path, followlinks=False):
                rel_dir = Path(dirpath).relative_to(self.root).as_posix()
                for name in dirnames + filenames:
                    st = os.lstat(os.path.join(dirpath, name))
                    rel = f"{rel_dir}/{name}"
                    if stat.S_ISDIR(st.st_mode) or self._generated(rel, st.st_mode):
                        continue
                    yield Entry(rel, st.st_size, _kind(st.st_mode))

    def _generated(self, rel: str, mode: int) -> bool:
        """Installer output of an installed wheel: RECORD & co., byte-code caches of listed modules."""
        if self.scope != "wheel" or not stat.S_ISREG(mode):
            return False
        if rel == f"{PACKAGE}/{MANIFEST_NAME}" or installer_written(rel):
            return True
        return pyc_source(rel) in self.rows

    def open_bytes(self, rel: str) -> bytes:
        """Read a listed file without following symlinks in any component; regular files only."""
        current = self.root
        for part in rel.split("/"):
            current = current / part
            try:
                st = os.lstat(current)
            except OSError:
                raise ManifestFileMissing(f"{rel} is listed but missing", reason="missing") from None
            if stat.S_ISLNK(st.st_mode):
                raise ManifestSymlink(f"{rel}: {current.name} is a symlink", reason="symlink")
        if not stat.S_ISREG(st.st_mode):
            raise ManifestNotRegularFile(f"{rel} is not a regular file", reason="not-regular")
        fd = os.open(current, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | os.O_NONBLOCK)
        with os.fdopen(fd, "rb") as fh:
            return fh.read()


class WheelSource:
    """A wheel file: every member is covered (scope ``wheel``), except RECORD and the manifest itself."""

    def __init__(self, path: Path) -> None:
        self.label = str(path)
        try:
            self.zip = zipfile.ZipFile(path)
        except (OSError, zipfile.BadZipFile):
            raise ManifestInvalid(f"{path} is not a readable wheel (zip) file", reason="bad-wheel") from None
        self.manifest_name = f"{PACKAGE}/{MANIFEST_NAME}"
        self.members = self.zip.infolist()
        self.infos = {i.filename: i for i in self.members}
        self.scope = "wheel"
        self.prefix = ""

    def manifest_bytes(self) -> bytes:
        info = self.infos.get(self.manifest_name)
        if info is None:
            raise ManifestMissing(f"{self.label} has no {self.manifest_name}")
        if info.file_size > MAX_MANIFEST_BYTES:
            raise ManifestInvalid("MANIFEST.md is larger than 1 MiB", reason="too-large")
        return self.zip.read(info)

    def bind(self, scope: str, rows_paths: list[str]) -> None:
        """A development wheel built without ``lm-vendor release`` carries a source manifest of its dist_public."""
        self.scope = scope
        self.prefix = "" if scope == "wheel" else PACKAGE + "/"

    def duplicate_members(self) -> list[str]:
        seen: set[str] = set()
        dups = []
        for info in self.members:
            if info.filename in seen:
                dups.append(info.filename)
            seen.add(info.filename)
        return dups

    def entries(self) -> Iterator[Entry]:
        for info in self.members:
            name = info.filename
            if name.endswith("/") or name == self.manifest_name:
                continue
            if self.scope == "wheel" and installer_written(name):
                continue
            if self.prefix:
                if not name.startswith(self.prefix + "dist_public/"):
                    continue
                name = name[len(self.prefix) :]
            yield Entry(name, info.file_size, _zip_kind(info))

    def open_bytes(self, rel: str) -> bytes:
        info = self.infos.get(self.prefix + rel)
        if info is None:
            raise ManifestFileMissing(f"{rel} is listed but missing from the wheel", reason="missing")
        if _zip_kind(info) != "file":
            raise ManifestNotRegularFile(f"{rel} is not a regular file inside the wheel", reason="not-regular")
        return self.zip.read(info)

    def record_paths(self) -> list[str] | None:
        """Paths the wheel's RECORD lists (None if it has none)."""
        records = [i for i in self.members if i.filename.endswith(".dist-info/RECORD")]
        if len(records) != 1:
            return None
        import csv
        import io

        text = self.zip.read(records[0]).decode("utf-8", errors="replace")
        return [row[0] for row in csv.reader(io.StringIO(text)) if row]
