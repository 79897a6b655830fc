"""Where the distribution (MANIFEST.md + dist_public/) of this installation is."""

from __future__ import annotations

import os
from pathlib import Path

DIST_ENV = "LM_DIST_ROOT"
PACKAGE_DIR = Path(__file__).resolve().parent.parent  # .../liquid_memory


def own_distribution_root() -> Path | None:
    """The installed package (wheel) if it holds MANIFEST.md, else the source checkout root (editable)."""
    for candidate in (PACKAGE_DIR, PACKAGE_DIR.parent.parent):
        if (candidate / "MANIFEST.md").is_file() and (candidate / "dist_public").is_dir():
            return candidate
    return None


def find_distribution_root() -> Path | None:
    """``LM_DIST_ROOT`` if set (the loader refuses a redirect in release builds); else our own."""
    if os.environ.get(DIST_ENV):
        return Path(os.environ[DIST_ENV])
    return own_distribution_root()
