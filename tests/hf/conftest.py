"""Fixtures of the Hugging Face tests (helpers in hf_models.py; ``rel_err`` from tests/core/scan_cases.py)."""

from __future__ import annotations

import functools
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(0, str(Path(__file__).parent.parent / "core"))


@functools.cache
def _dev_licence() -> str:
    from liquid_memory_vendor.dev import issue_dev_licence

    return issue_dev_licence(("kernel",), licensee="Liquid Memory hf tests")


@pytest.fixture
def licensed(monkeypatch):
    """A valid development licence in LM_PRIVATE_KEY (the compiled cpp kernels run only under one)."""
    from liquid_memory.licensing import reset_cache

    monkeypatch.setenv("LM_PRIVATE_KEY", _dev_licence())
    monkeypatch.delenv("LM_BACKEND", raising=False)
    reset_cache()
    yield
    reset_cache()


@pytest.fixture(autouse=True)
def one_thread():
    """Tiny models gain nothing from threads, and on a shared CPU the OpenMP barriers of 2 threads made each
    tiny op 100× slower (measured): run these tests on one thread, restore the setting afterwards."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
