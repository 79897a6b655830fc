"""Core test fixtures: the liquid_scan backends the module tests run on, and a development licence.

The compiled ``cpp`` backend runs only under a verified licence, so the tests issue one from the
committed DEVELOPMENT vendor identity (trusted by development builds only) — the same path the
README demo takes. If the C++ extension is not built, the cpp cases fail: they are not skipped.
"""

from __future__ import annotations

import pytest

MODULE_BACKENDS = ["chunked", "cpp"]


@pytest.fixture(params=MODULE_BACKENDS)
def backend(request) -> str:
    if request.param != "chunked":
        request.getfixturevalue("licensed")
    return request.param


@pytest.fixture(autouse=True)
def _fixed_global_seed():
    """Every test starts from the same global RNG state, so tests that draw with plain ``torch.randn`` are
    reproducible whatever ran before them (kernel tests use explicit generators, see scan_cases)."""
    import torch

    torch.manual_seed(0)
