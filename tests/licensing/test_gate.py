"""The licence gate: once-per-process verification, expiry re-check, release builds trust only baked keys."""

from __future__ import annotations

import time

import pytest
from liquid_memory_vendor.dev import dev_vendor, issue_dev_licence

from liquid_memory import errors as E
from liquid_memory.licensing import _trust_root, gate, require_feature, trusted_keys
from liquid_memory.licensing.trust import DEV_TRUST_ENV
from liquid_memory.manifest import distribution
from tests.licensing.helpers import make_installed_release, make_licence


def test_missing_licence_says_what_to_do():
    with pytest.raises(E.LicenseMissing) as info:
        require_feature("kernel")
    msg = str(info.value)
    assert info.value.code == "LM101" and "LM_PRIVATE_KEY" in msg and "LM_BACKEND=reference" in msg


def test_dev_licence_works_in_development_build(monkeypatch):
    monkeypatch.setenv("LM_PRIVATE_KEY", issue_dev_licence(features=("kernel",)))
    lic = require_feature("kernel")
    assert lic.kid == dev_vendor().kid and lic.kid in _trust_root.VENDOR_KEYS


def test_release_build_trusts_only_baked_keys(vendor, stranger, monkeypatch, tmp_path):
    """In a release build neither the dev identity nor LM_DEV_TRUSTED_KEYS is trusted."""
    monkeypatch.setenv("LM_DIST_ROOT", str(tmp_path))  # not the repo's dev-signed distribution
    monkeypatch.setattr(_trust_root, "BUILD", "release")
    monkeypatch.setattr(_trust_root, "VENDOR_KEYS", {vendor.kid: vendor.trust_entry().split(":")[1]})
    monkeypatch.setenv(DEV_TRUST_ENV, stranger.trust_entry())
    assert set(trusted_keys()) == {vendor.kid}
    for key in (make_licence(stranger), issue_dev_licence()):
        gate.reset_cache()
        monkeypatch.setenv("LM_PRIVATE_KEY", key)
        with pytest.raises(E.LicenseUnknownKey):
            require_feature("kernel")
    gate.reset_cache()
    monkeypatch.setenv("LM_PRIVATE_KEY", make_licence(vendor))
    with pytest.raises(E.DistributionUnavailable, match="redirect"):  # LM_DIST_ROOT cannot redirect a release
        require_feature("kernel")
    monkeypatch.delenv("LM_DIST_ROOT")
    pkg = make_installed_release(vendor, tmp_path / "site")
    monkeypatch.setattr(distribution, "own_distribution_root", lambda: pkg)
    gate.reset_cache()
    assert require_feature("kernel").licensee == "Acme Test"


def test_verified_once_per_process(trusted_vendor, monkeypatch):
    calls = []
    real = gate.parse_licence
    monkeypatch.setattr(gate, "parse_licence", lambda *a: calls.append(1) or real(*a))
    monkeypatch.setenv("LM_PRIVATE_KEY", make_licence(trusted_vendor))
    for _ in range(5):
        require_feature("kernel")
    assert len(calls) == 1
    monkeypatch.setenv("LM_PRIVATE_KEY", make_licence(trusted_vendor, licensee="Other"))  # new key -> re-verify
    assert require_feature("kernel").licensee == "Other" and len(calls) == 2


def test_expiry_rechecked_on_long_running_process(trusted_vendor, monkeypatch):
    now = int(time.time())
    monkeypatch.setenv("LM_PRIVATE_KEY", make_licence(trusted_vendor, exp=now + 100))
    require_feature("kernel")
    monkeypatch.setattr(time, "time", lambda: now + 101.0)
    with pytest.raises(E.LicenseExpired):
        require_feature("kernel")


def _all_error_classes() -> list[type]:
    """Every LiquidMemoryError subclass in the SDK, including those defined outside errors.py (LM6xx, LM7xx)."""
    import importlib

    for module in ("liquid_memory.lm.errors", "liquid_memory.hf.errors", "liquid_memory.data.essays"):
        importlib.import_module(module)
    found, todo = [], [E.LiquidMemoryError]
    while todo:
        cls = todo.pop()
        found.append(cls)
        todo.extend(cls.__subclasses__())
    return found


def test_error_codes_are_unique_and_documented():
    from pathlib import Path

    classes = _all_error_classes()
    assert set(E.ALL_ERRORS) <= set(classes) and len(classes) > len(E.ALL_ERRORS)  # the walk sees the LM6xx/LM7xx
    codes = [cls.code for cls in classes]
    assert len(codes) == len(set(codes)), sorted(c for c in codes if codes.count(c) > 1)
    doc = Path(__file__).resolve().parents[2] / "README_INTEGRATION.md"
    text = doc.read_text(encoding="utf-8")
    missing = [f"{c.code} {c.__name__}" for c in classes if f"| {c.code} | {c.__name__} |" not in text]
    assert not missing, f"undocumented error codes: {missing}"
