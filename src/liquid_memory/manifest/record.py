"""An installed release's RECORD: every path the installer wrote must be signed, or be the installer's own output.

Installed verify walks the top-level names the manifest names, but a wheel changed in transit can install
files elsewhere: ``zz.pth`` next to the package (it runs at every interpreter start and can read
``LM_PRIVATE_KEY``), a module or data file through ``<name>.data/purelib``, a program through
``<name>.data/scripts`` into ``bin/``. pip writes every file it installed into the installed RECORD — also
files the wheel's own RECORD left out — so judging each RECORD path covers what the installation added,
wherever it went. Installer output that no vendor can sign in advance is allowed by name: the dist-info's
RECORD, INSTALLER, REQUESTED and direct_url.json, byte-code caches of signed modules, and the console
scripts of the signed ``entry_points.txt``.
"""

from __future__ import annotations

import configparser
import csv
import io
import re
from collections.abc import Callable
from dataclasses import dataclass

from liquid_memory.errors import LiquidMemoryError, ManifestError, ManifestExtraFile, ManifestInvalid
from liquid_memory.manifest.format import PACKAGE, check_path

MANIFEST_PATH = f"{PACKAGE}/MANIFEST.md"
INSTALLER_FILES = frozenset({"RECORD", "INSTALLER", "REQUESTED", "direct_url.json"})
SCRIPT_DIRS = frozenset({"bin", "Scripts"})
_PYC = re.compile(r"(?P<stem>[A-Za-z0-9_]+)\.cpython-\d+(\.opt-[12])?\.pyc")


def installer_written(rel: str) -> bool:
    """``<name>.dist-info/{RECORD,INSTALLER,REQUESTED,direct_url.json}``: written at install time."""
    parts = rel.split("/")
    return len(parts) == 2 and parts[0].endswith(".dist-info") and parts[1] in INSTALLER_FILES


def pyc_source(rel: str) -> str | None:
    """``a/__pycache__/m.cpython-311.pyc`` -> ``a/m.py`` (the module a byte-code cache belongs to)."""
    parts = rel.split("/")
    m = _PYC.fullmatch(parts[-1])
    if len(parts) >= 2 and parts[-2] == "__pycache__" and m:
        return "/".join([*parts[:-2], f"{m['stem']}.py"])
    return None


def dist_info_of(rows: list[str]) -> str | None:
    """The one ``<name>.dist-info`` folder whose METADATA the manifest signs."""
    found = [p.split("/")[0] for p in rows if p.count("/") == 1 and p.endswith(".dist-info/METADATA")]
    return found[0] if len(found) == 1 else None


def console_scripts(entry_points: bytes) -> set[str]:
    """Names under ``[console_scripts]`` of a (signed) ``entry_points.txt``; empty when unreadable."""
    parser = configparser.ConfigParser(delimiters=("=",), interpolation=None)
    parser.optionxform = str  # keep names as written
    try:
        parser.read_string(entry_points.decode("utf-8"))
    except (UnicodeDecodeError, configparser.Error):
        return set()
    return set(parser["console_scripts"]) if parser.has_section("console_scripts") else set()


@dataclass(frozen=True)
class InstalledRecord:
    """The installed RECORD split into paths inside ``site-packages`` and paths that leave it."""

    inside: tuple[str, ...] = ()
    outside: tuple[str, ...] = ()
    error: LiquidMemoryError | None = None  # no RECORD, or not a readable one

    @property
    def tops(self) -> set[str]:
        return {p.split("/", 1)[0] for p in self.inside}


def parse_record(data: bytes | None, where: str) -> InstalledRecord:
    if data is None:
        return InstalledRecord(error=ManifestInvalid(f"{where} is missing, not a regular file or over 16 MiB: an "
                                                     "installed release has the installer's RECORD of every file it "
                                                     "wrote",
                                                     reason="record"))  # fmt: skip
    try:
        rows = [row[0] for row in csv.reader(io.StringIO(data.decode("utf-8"))) if row]
    except (UnicodeDecodeError, csv.Error):
        return InstalledRecord(error=ManifestInvalid(f"{where} is not a readable RECORD", reason="record"))
    inside, outside = [], []
    for path in rows:
        leaves = path.startswith("/") or ".." in path.replace("\\", "/").split("/")
        (outside if leaves else inside).append(path)
    return InstalledRecord(tuple(inside), tuple(outside))


def record_problems(record: InstalledRecord, rows: set[str], tops: set[str], scripts: set[str],
                    exists: Callable[[str], bool]) -> list[tuple[str, LiquidMemoryError]]:  # fmt: skip
    """``(path, problem)`` for every RECORD path that is neither a signed row nor installer output, and for
    every top-level name RECORD lists that the manifest does not (reported once, not file by file)."""
    if record.error is not None:
        return [("", record.error)]
    out: list[tuple[str, LiquidMemoryError]] = []
    for path in record.inside:
        try:
            check_path(path, "wheel")
        except ManifestError as exc:
            out.append((path, exc))
            continue
        if path in rows or path == MANIFEST_PATH or installer_written(path) or pyc_source(path) in rows:
            continue
        out.append((path, ManifestExtraFile(f"{path} was installed with this package (the installed RECORD lists "
                                            "it) but is not in the signed manifest", reason="record")))  # fmt: skip
    for top in sorted(record.tops - tops):
        if exists(top):
            out.append((top, ManifestExtraFile(f"{top}: a top-level name this installation wrote beside the package, "
                                               "not part of the signed distribution", reason="record")))  # fmt: skip
    for path in record.outside:
        parts = path.replace("\\", "/").split("/")
        if len(parts) >= 2 and parts[-2] in SCRIPT_DIRS and parts[-1] in scripts:
            continue  # a console script the installer generated from the signed entry_points.txt
        out.append((path, ManifestExtraFile(f"{path} was installed outside site-packages and is not a console script "
                                            "of the signed entry points", reason="outside")))  # fmt: skip
    return out
