"""Rollback memory: the highest sequence number seen per vendor key, kept in ``LM_STATE_DIR``.

Used for revocation lists (``revocation-seq.json``) and release manifests (``manifest-seq.json``). A
fresh state folder forgets what it saw — README_INTEGRATION.md §6 says what that leaves open.
"""

from __future__ import annotations

import json
import os
from pathlib import Path


def state_dir() -> Path:
    return Path(os.environ.get("LM_STATE_DIR") or Path.home() / ".cache" / "liquid-memory")


def newest_seen(name: str, kid: str, directory: Path | None = None) -> int:
    """Highest number recorded under ``name`` for ``kid`` (-1 if none)."""
    try:
        seen = json.loads(((directory or state_dir()) / name).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return -1
    value = seen.get(kid, -1) if isinstance(seen, dict) else -1
    return value if type(value) is int else -1


def remember(name: str, kid: str, value: int, directory: Path | None = None) -> None:
    """Record ``value`` if it is newer (best effort: a read-only home degrades to per-process memory)."""
    path = (directory or state_dir()) / name
    try:
        seen = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(seen, dict):
            seen = {}
    except (OSError, ValueError):
        seen = {}
    old = seen.get(kid, -1)
    if type(old) is int and old >= value:
        return
    seen[kid] = value
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps(seen, sort_keys=True), encoding="utf-8")
        os.replace(tmp, path)
    except OSError:
        pass
