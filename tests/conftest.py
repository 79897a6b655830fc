"""Session-wide test setup: rollback memory (``LM_STATE_DIR``) in a temporary folder, derandomized Hypothesis,
autograd left on by every test.

The licensing runtime records the highest manifest/revocation sequence it has seen; tests must neither read a
developer's ``~/.cache/liquid-memory`` nor leave state there that a later checkout would trip over.
"""

from __future__ import annotations

import os

# The triton backend is tested in the Triton interpreter (no GPU here). Triton fixes interpreter vs compiler
# when it is first imported — `import torch._dynamo` (so any liquid_memory import) already imports it — so this
# must happen here, before any test module of any folder is collected.
os.environ.setdefault("TRITON_INTERPRET", "1")

import tempfile  # noqa: E402

import pytest  # noqa: E402
from hypothesis import settings  # noqa: E402

from tests.dev_licence import dev_licence  # noqa: E402

# Property tests draw the same examples on every run and machine (a failure reproduces; CI never flakes on a new
# draw); their settings inherit this profile. HYPOTHESIS_PROFILE=explore draws fresh examples for a local search.
settings.register_profile("derandomized", derandomize=True, database=None, deadline=None)
settings.register_profile("explore", deadline=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "derandomized"))


@pytest.fixture(autouse=True, scope="session")
def _isolated_state_dir():
    previous = os.environ.get("LM_STATE_DIR")
    with tempfile.TemporaryDirectory(prefix="lm-test-state-") as folder:
        os.environ["LM_STATE_DIR"] = folder
        yield folder
    if previous is None:
        os.environ.pop("LM_STATE_DIR", None)
    else:
        os.environ["LM_STATE_DIR"] = previous


@pytest.fixture
def licensed(monkeypatch):
    """A valid development licence in LM_PRIVATE_KEY for one test (the compiled kernels run only under one)."""
    from liquid_memory.licensing import reset_cache

    monkeypatch.setenv("LM_PRIVATE_KEY", dev_licence())
    monkeypatch.delenv("LM_BACKEND", raising=False)
    reset_cache()
    yield
    reset_cache()


@pytest.fixture(autouse=True)
def _grad_mode_is_restored():
    """Every test leaves autograd on: a test that switched it off for the rest of the session (a global
    ``set_grad_enabled(False)``, a patched ``torch.is_grad_enabled``) fails here instead of breaking later,
    unrelated tests. The mode is put back either way."""
    import torch

    yield
    leaked = not torch.is_grad_enabled()
    torch.set_grad_enabled(True)
    assert not leaked, "this test left autograd switched off"
