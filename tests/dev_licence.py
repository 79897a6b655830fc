"""The development licence the test suites run the compiled kernels under (one per process, cached)."""

from __future__ import annotations

import functools


@functools.cache
def dev_licence() -> str:
    """A ``kernel`` licence signed by the committed development identity (tests and demos only)."""
    from liquid_memory_vendor.dev import issue_dev_licence

    return issue_dev_licence(("kernel",), licensee="Liquid Memory test suite")
