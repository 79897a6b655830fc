"""Read-only views of a distribution: a directory tree or a wheel (zip) that is never extracted."""

from __future__ import annotations

import os
import stat
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from liquid_memory.errors import ManifestFileMissing, ManifestInvalid, ManifestMissing, ManifestSymlink
from liquid_memory.manifest.format import MAX_MANIFEST_BYTES

WHEEL_PACKAGE = "liquid_memory"


@dataclass(frozen=True)
class Entry:
    path: str  # relative POSIX path from the distribution root
    size: int
    is_symlink: bool


class DirSource:
    """A distribution root on disk (repository root or installed ``liquid_memory/`` package)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.label = str(root)

    def manifest_bytes(self) -> bytes:
        path = self.root / "MANIFEST.md"
        if path.is_symlink():
            raise ManifestSymlink(f"{path} is a symlink", reason="manifest-symlink")
        try:
            with open(path, "rb") as fh:
                return fh.read(MAX_MANIFEST_BYTES + 1)
        except OSError:
            raise ManifestMissing(f"no MANIFEST.md in {self.root}") from None

    def entries(self) -> Iterator[Entry]:
        """Every file, directory symlink and file symlink under dist_public/ (links not followed)."""
        top = self.root / "dist_public"
        if top.is_symlink():
            yield Entry("dist_public", 0, True)
            return
        for dirpath, dirnames, filenames in os.walk(top, followlinks=False):
            rel_dir = Path(dirpath).relative_to(self.root).as_posix()
            for name in dirnames + filenames:
                st = os.lstat(os.path.join(dirpath, name))
                if stat.S_ISLNK(st.st_mode):
                    yield Entry(f"{rel_dir}/{name}", 0, True)
                elif stat.S_ISREG(st.st_mode):
                    yield Entry(f"{rel_dir}/{name}", st.st_size, False)

    def open_bytes(self, rel: str) -> bytes:
        """Read a listed file without following symlinks in any component."""
        current = self.root
        for part in rel.split("/"):
            current = current / part
            try:
                st = os.lstat(current)
            except OSError:
                raise ManifestFileMissing(f"{rel} is listed but missing", reason="missing") from None
            if stat.S_ISLNK(st.st_mode):
                raise ManifestSymlink(f"{rel}: {current.name} is a symlink", reason="symlink")
        fd = os.open(current, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
        with os.fdopen(fd, "rb") as fh:
            return fh.read()


class WheelSource:
    """A wheel file: the distribution root is the ``liquid_memory/`` package folder inside it."""

    def __init__(self, path: Path) -> None:
        self.label = str(path)
        try:
            self.zip = zipfile.ZipFile(path)
        except (OSError, zipfile.BadZipFile):
            raise ManifestInvalid(f"{path} is not a readable wheel (zip) file", reason="bad-wheel") from None
        self.prefix = WHEEL_PACKAGE + "/"
        self.infos = {i.filename: i for i in self.zip.infolist()}

    def manifest_bytes(self) -> bytes:
        info = self.infos.get(self.prefix + "MANIFEST.md")
        if info is None:
            raise ManifestMissing(f"{self.label} has no {self.prefix}MANIFEST.md")
        if info.file_size > MAX_MANIFEST_BYTES:
            raise ManifestInvalid("MANIFEST.md is larger than 1 MiB", reason="too-large")
        return self.zip.read(info)

    def entries(self) -> Iterator[Entry]:
        for name, info in self.infos.items():
            if not name.startswith(self.prefix + "dist_public") or name.endswith("/"):
                continue
            mode = info.external_attr >> 16
            yield Entry(name[len(self.prefix) :], info.file_size, stat.S_ISLNK(mode))

    def open_bytes(self, rel: str) -> bytes:
        info = self.infos.get(self.prefix + rel)
        if info is None:
            raise ManifestFileMissing(f"{rel} is listed but missing from the wheel", reason="missing")
        if stat.S_ISLNK(info.external_attr >> 16):
            raise ManifestSymlink(f"{rel} is a symlink inside the wheel", reason="symlink")
        return self.zip.read(info)
