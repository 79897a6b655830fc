"""Signed MANIFEST.md: format (``format``), read-only sources (``sources``), verification (``verify``)."""

from liquid_memory.manifest.locate import find_distribution_root
from liquid_memory.manifest.verify import Report, verify_path

__all__ = ["Report", "find_distribution_root", "verify_path"]
