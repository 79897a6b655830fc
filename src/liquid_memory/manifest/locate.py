"""Where the distribution (MANIFEST.md + dist_public/) of this installation is."""

from __future__ import annotations

import os
from pathlib import Path

DIST_ENV = "LM_DIST_ROOT"
PACKAGE_DIR = Path(__file__).resolve().parent.parent  # .../liquid_memory


def find_distribution_root() -> Path | None:
    """``LM_DIST_ROOT`` if set; else the installed package (wheel); else the source checkout root."""
    if os.environ.get(DIST_ENV):
        return Path(os.environ[DIST_ENV])
    for candidate in (PACKAGE_DIR, PACKAGE_DIR.parent.parent):
        if (candidate / "MANIFEST.md").is_file() and (candidate / "dist_public").is_dir():
            return candidate
    return None
