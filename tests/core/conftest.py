"""Core test fixtures: which liquid_scan backends the module tests run on."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

MODULE_BACKENDS = ["chunked"]


@pytest.fixture(params=MODULE_BACKENDS)
def backend(request) -> str:
    return request.param
