"""Fixtures of the Hugging Face tests (helpers in hf_models.py; ``rel_err`` from tests/core/scan_cases.py)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(0, str(Path(__file__).parent.parent / "core"))


@pytest.fixture(autouse=True)
def one_thread():
    """Tiny models gain nothing from threads, and on a shared CPU the OpenMP barriers of 2 threads made each
    tiny op 100× slower (measured): run these tests on one thread, restore the setting afterwards."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
