"""What a base install holds: the requirements of a distribution without extras and theirs (their closure, read
from the installed metadata), as a folder of links that can serve as the only site-packages."""

from __future__ import annotations

import re
from importlib import metadata
from pathlib import Path

from packaging.requirements import Requirement


def _normal(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def base_closure(requirements: list[str]) -> list[metadata.Distribution]:
    """The installed distributions ``requirements`` (no extra) pull in, recursively."""
    seen: dict[str, metadata.Distribution] = {}
    todo = [Requirement(r) for r in requirements]
    while todo:
        req = todo.pop()
        if req.marker is not None and not req.marker.evaluate({"extra": ""}):
            continue
        if _normal(req.name) in seen:
            continue
        dist = metadata.distribution(req.name)
        seen[_normal(req.name)] = dist
        todo += [Requirement(r) for r in dist.requires or []]
    return list(seen.values())


def link_site(site: Path, requirements: list[str]) -> Path:
    """Fill ``site`` with links to the top-level files of the closure of ``requirements``."""
    site.mkdir(parents=True, exist_ok=True)
    for dist in base_closure(requirements):
        for entry in {f.parts[0] for f in dist.files or [] if f.parts and f.parts[0] != ".."}:
            target = Path(dist.locate_file(entry))
            if target.exists() and not (site / entry).exists():
                (site / entry).symlink_to(target)
    return site
