"""Fixtures of the Hugging Face tests (helpers in ``tests.hf.hf_models``; ``rel_err`` from ``tests.numerics``)."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def one_thread():
    """Tiny models gain nothing from threads, and on a shared CPU the OpenMP barriers of 2 threads made each
    tiny op 100× slower (measured): run these tests on one thread, restore the setting afterwards."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
