"""Fixtures: a clean licence environment per test and throwaway vendors trusted via the dev-build hook."""

from __future__ import annotations

import pytest

from liquid_memory.licensing import reset_cache
from liquid_memory.licensing.trust import DEV_TRUST_ENV
from tests.licensing.helpers import make_vendor


@pytest.fixture(autouse=True)
def clean_licence_env(monkeypatch, tmp_path_factory):
    for var in ("LM_PRIVATE_KEY", "LM_PRIVATE_KEY_FILE", "LM_REVOCATION_LIST", DEV_TRUST_ENV, "LM_DIST_ROOT"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("LM_STATE_DIR", str(tmp_path_factory.mktemp("lm-state")))
    reset_cache()
    yield
    reset_cache()


@pytest.fixture(scope="session")
def vendor():
    """A throwaway vendor; trusted only when a test asks for ``trusted_vendor``."""
    return make_vendor("trusted throwaway vendor")


@pytest.fixture(scope="session")
def stranger():
    """A vendor this build never trusts."""
    return make_vendor("untrusted stranger")


@pytest.fixture
def trusted_vendor(vendor, monkeypatch):
    monkeypatch.setenv(DEV_TRUST_ENV, vendor.trust_entry())
    return vendor


@pytest.fixture(scope="session")
def rel(tmp_path_factory):
    """A development release then a real release in one checkout, the real wheel installed (release_env.py).

    Built once per test run (compiles csrc/ once, for the development wheel): every release test shares it.
    """
    from tests.licensing.release_env import Release

    return Release(tmp_path_factory.mktemp("release"))
