"""In-process: scoped content keys, rollback of manifests, mandatory bound revocation."""

from __future__ import annotations

import pytest
from nacl.public import PrivateKey, SealedBox

from liquid_memory import errors as E
from liquid_memory.licensing import parse_licence, require_feature, reset_cache
from liquid_memory.manifest import distribution
from liquid_memory.manifest.verify import verify_path
from tests.licensing.helpers import make_installed_release, make_vendor


def _issue(vk, **kw):
    from liquid_memory_vendor.issue import issue_licence

    return issue_licence(vk, licensee="Scoped", expires=2**33, **kw)


def test_licences_receive_only_the_keys_their_features_and_versions_allow(tmp_path):
    from liquid_memory_vendor import keystore

    vk = make_vendor("scoped")
    old_kernel = vk.current["kernel@0.1"]
    new_kernel = vk.rotate("kernel", "0.1")  # lm-vendor rotate-content-key
    next_line = vk.rotate("kernel", "0.2")
    proxy_key = vk.rotate("proxy", "0.1")
    trusted = {vk.kid: vk.public_key}
    assert set(parse_licence(_issue(vk, features=["proxy"]), trusted).sealed_content_keys) == {proxy_key}
    kernel_01 = parse_licence(_issue(vk, features=["kernel"], versions=">=0.1,<0.2"), trusted)
    assert set(kernel_01.sealed_content_keys) == {old_kernel, new_kernel}
    assert kernel_01.content_key(new_kernel) == vk.content_keys[new_kernel]
    with pytest.raises(E.ArtifactKeyUnavailable):
        kernel_01.content_key(next_line)
    assert next_line in parse_licence(_issue(vk, features=["kernel"]), trusted).sealed_content_keys
    keystore.save(vk, tmp_path / "vendor.key", b"pw", moderate=False)  # scopes survive the file format
    again = keystore.load(tmp_path / "vendor.key", b"pw")
    assert again.current == vk.current and again.content_scopes == vk.content_scopes


def test_a_proxy_only_licence_cannot_unseal_a_kernel_key_even_if_handed_one():
    vk = make_vendor("scoped2")
    ckid = vk.current["kernel@0.1"]
    lic = parse_licence(_issue(vk, features=["proxy"]), {vk.kid: vk.public_key})
    stranger = SealedBox(PrivateKey.generate().public_key).encrypt(vk.content_keys[ckid])
    object.__setattr__(lic, "sealed_content_keys", {ckid: stranger})  # sealed to someone else
    with pytest.raises(E.ArtifactKeyUnavailable):
        lic.content_key(ckid)


def test_older_manifest_is_refused_after_a_newer_one_was_seen(tmp_path):
    vk = make_vendor("rollback")
    trusted = {vk.kid: vk.public_key}
    new = make_installed_release(vk, tmp_path / "new", sequence=5)
    old = make_installed_release(vk, tmp_path / "old", sequence=4)
    assert verify_path(old, trusted=trusted).ok  # nothing newer seen yet
    assert verify_path(new, trusted=trusted).ok
    codes = [p.code for p in verify_path(old, trusted=trusted).problems]
    assert "LM213" in codes, codes


def test_licence_gate_needs_the_bound_revocation_list(tmp_path, monkeypatch, trusted_vendor):
    from tests.licensing.helpers import make_licence

    pkg = make_installed_release(trusted_vendor, tmp_path / "site")
    monkeypatch.setattr(distribution, "own_distribution_root", lambda: pkg)
    monkeypatch.setenv("LM_PRIVATE_KEY", make_licence(trusted_vendor))
    assert require_feature("kernel").licensee == "Acme Test"
    (pkg / "dist_public" / "revocations.lmr").unlink()
    reset_cache()
    with pytest.raises(E.DistributionUnavailable):
        require_feature("kernel")
    monkeypatch.setattr(distribution, "own_distribution_root", lambda: None)
    reset_cache()
    with pytest.raises(E.DistributionUnavailable):
        require_feature("kernel")


def test_manifest_for_another_version_than_the_package_is_refused(tmp_path):
    vk = make_vendor("versions")
    pkg = make_installed_release(vk, tmp_path / "site")
    meta = tmp_path / "site" / "liquid_memory-0.1.0.dist-info" / "METADATA"
    meta.write_text("Metadata-Version: 2.1\nVersion: 0.2.0\n\n")  # edited: hash or binding
    codes = [p.code for p in verify_path(pkg, trusted={vk.kid: vk.public_key}).problems]
    assert codes and set(codes) <= {"LM209", "LM210", "LM214"}, codes
    pkg2 = make_installed_release(vk, tmp_path / "site2")
    report = verify_path(pkg2, trusted={vk.kid: vk.public_key}, expected_version="0.2.0")  # the loader's check
    assert [p.code for p in report.problems] == ["LM214"]
