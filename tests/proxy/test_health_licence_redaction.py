"""/health/readiness tells anonymous callers only whether a licence is valid: the licence id
and expiry are shown to callers presenting a configured API key, and to nobody when auth is off."""

from __future__ import annotations

import httpx
import pytest
from liquid_memory_vendor.dev import issue_dev_licence

from liquid_memory.licensing import reset_cache


@pytest.fixture
def licensed_env(monkeypatch):
    monkeypatch.setenv("LM_PRIVATE_KEY", issue_dev_licence(features=("proxy",), licensee="Readiness Probe Ltd"))
    reset_cache()
    yield
    reset_cache()


def test_readiness_hides_licence_details_unless_authenticated(make_proxy, licensed_env):
    secured = make_proxy(proxy_api_keys="probe-key")
    anonymous = httpx.get(secured + "/health/readiness", timeout=30).json()["sdk"]["licence"]
    assert anonymous == {"status": "valid"}, anonymous
    wrong = httpx.get(secured + "/health/readiness", headers={"authorization": "Bearer nope"}, timeout=30)
    assert wrong.json()["sdk"]["licence"] == {"status": "valid"}
    authed = httpx.get(secured + "/health/readiness", headers={"authorization": "Bearer probe-key"}, timeout=30)
    details = authed.json()["sdk"]["licence"]
    assert details["status"] == "valid" and details["licence_id"].startswith("lic_") and details["expires"] > 0
    open_proxy = make_proxy()  # auth off: nobody is authenticated
    assert httpx.get(open_proxy + "/health/readiness", timeout=30).json()["sdk"]["licence"] == {"status": "valid"}
