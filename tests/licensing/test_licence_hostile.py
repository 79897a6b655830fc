"""Hostile licence keys: each is rejected with its expected typed error (code + reason) and no traceback.

Keys are fed the way a customer does (``LM_PRIVATE_KEY``) and checked through ``liquid-memory license
--json`` in-process, so the test also proves the CLI prints a typed error instead of a traceback.
"""

from __future__ import annotations

import json
import time

import pytest
from liquid_memory_vendor.issue import sign_revocation_list
from nacl.public import PrivateKey

from liquid_memory import errors as E
from liquid_memory.cli import main
from liquid_memory.licensing import require_feature, reset_cache
from liquid_memory.licensing.encoding import b64e, canonical_json
from tests.licensing.helpers import claims_for, licence_from_payload, make_licence


def _flip_trailing_bits(part: str) -> str:
    """Same length, same decoded bytes except the unused low bits of the last character are set."""
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    return part[:-1] + alphabet[alphabet.index(part[-1]) | 1]


def _parts(key: str) -> list[str]:
    return key[len("lmk1.") :].split(".")


def _join(parts: list[str]) -> str:
    return "lmk1." + ".".join(parts)


def _edit_claims(vendor, key: str, **over: object) -> str:
    """Change claims after signing: re-encode the payload, keep the old signature."""
    parts = _parts(key)
    import base64

    claims = json.loads(base64.urlsafe_b64decode(parts[0] + "=" * (-len(parts[0]) % 4)))
    claims.update(over)
    parts[0] = b64e(canonical_json(claims))
    return _join(parts)


def _signed(vendor, payload: bytes) -> str:
    return licence_from_payload(vendor, payload, PrivateKey.generate())


NOW = int(time.time())

# name -> (builder(vendor, stranger) -> key text, expected class, expected reason or None)
CASES = {
    "empty": (lambda v, s: "", E.LicenseMalformed, "empty"),
    "whitespace": (lambda v, s: "  \t\n ", E.LicenseMalformed, "empty"),
    "truncated-half": (lambda v, s: make_licence(v)[:200], E.LicenseMalformed, "truncated"),
    "certificate-only": (lambda v, s: make_licence(v).rsplit(".", 1)[0], E.LicenseMalformed, "truncated"),
    "secret-cut-4": (lambda v, s: make_licence(v)[:-4], E.LicenseMalformed, "bad-length"),
    "wrong-prefix": (lambda v, s: "lmx1." + make_licence(v)[5:], E.LicenseMalformed, "bad-prefix"),
    "upper-prefix": (lambda v, s: "LMK1." + make_licence(v)[5:], E.LicenseMalformed, "bad-prefix"),
    "future-version": (lambda v, s: "lmk2." + make_licence(v)[5:], E.LicenseMalformed, "bad-version"),
    "bad-base64-char": (lambda v, s: _join(["!" + p if i == 0 else p for i, p in enumerate(_parts(make_licence(v)))]),
                        E.LicenseMalformed, "bad-base64"),
    "std-alphabet-plus": (lambda v, s: _join([p.replace("-", "+").replace("_", "/") + "+/" if i == 0 else p
                                              for i, p in enumerate(_parts(make_licence(v)))]),
                          E.LicenseMalformed, "bad-base64"),
    "padding": (lambda v, s: make_licence(v) + "=", E.LicenseMalformed, "bad-base64"),
    "padded-claims": (lambda v, s: _join([p + "==" if i == 0 else p for i, p in enumerate(_parts(make_licence(v)))]),
                      E.LicenseMalformed, "bad-base64"),
    "non-canonical-sig": (lambda v, s: _join([_flip_trailing_bits(p) if i == 1 else p
                                              for i, p in enumerate(_parts(make_licence(v)))]),
                          E.LicenseMalformed, "non-canonical-base64"),
    "trailing-garbage-part": (lambda v, s: make_licence(v) + ".AAAA", E.LicenseMalformed, "trailing-garbage"),
    "trailing-garbage-glued": (lambda v, s: make_licence(v) + "AAAA", E.LicenseMalformed, "bad-length"),
    "internal-newline": (lambda v, s: make_licence(v)[:100] + "\n" + make_licence(v)[100:], E.LicenseMalformed,
                         "bad-base64"),
    "non-ascii": (lambda v, s: make_licence(v)[:50] + "é" + make_licence(v)[51:], E.LicenseMalformed, "bad-base64"),
    "nul-byte": (lambda v, s: make_licence(v)[:50] + "\x00" + make_licence(v)[51:], E.LicenseMalformed, "bad-base64"),
    "one-megabyte": (lambda v, s: "lmk1." + "A" * (1 << 20), E.LicenseTooLarge, None),
    "sig-63-bytes": (lambda v, s: _join([b64e(b"\x01" * 63) if i == 1 else p
                                         for i, p in enumerate(_parts(make_licence(v)))]),
                     E.LicenseMalformed, "bad-length"),
    "signed-by-stranger-unknown-kid": (lambda v, s: make_licence(s), E.LicenseUnknownKey, None),
    "signed-by-stranger-claims-trusted-kid": (
        lambda v, s: (lambda k: _join([_parts(make_licence(v))[0], _parts(k)[1], _parts(k)[2]]))(
            licence_from_payload(s, __import__("base64").urlsafe_b64decode(
                _parts(make_licence(v))[0] + "=="), PrivateKey.generate())),
        E.LicenseSignatureInvalid, None),
    "unknown-kid": (lambda v, s: make_licence(v, kid="00000000deadbeef"), E.LicenseUnknownKey, None),
    "edited-licensee": (lambda v, s: _edit_claims(v, make_licence(v), licensee="Mallory"),
                        E.LicenseSignatureInvalid, None),
    "edited-features": (lambda v, s: _edit_claims(v, make_licence(v, features=["proxy"]), features=["kernel", "proxy"]),
                        E.LicenseSignatureInvalid, None),
    "edited-expiry": (lambda v, s: _edit_claims(v, make_licence(v), exp=NOW + 10**8), E.LicenseSignatureInvalid, None),
    "secret-from-other-licence": (lambda v, s: _join(_parts(make_licence(v))[:2] + _parts(make_licence(v))[2:]),
                                  E.LicenseSecretMismatch, None),
    "secret-all-zero": (lambda v, s: _join(_parts(make_licence(v))[:2] + [b64e(bytes(32))]),
                        E.LicenseSecretMismatch, None),
    "expired-by-1s": (lambda v, s: make_licence(v, iat=NOW - 100, nbf=NOW - 100, exp=int(time.time()) - 1),
                      E.LicenseExpired, None),
    "not-yet-valid": (lambda v, s: make_licence(v, nbf=NOW + 86400, exp=NOW + 2 * 86400), E.LicenseNotYetValid, None),
    "version-out-of-range": (lambda v, s: make_licence(v, versions="<0.1"), E.VersionNotLicensed, None),
    "duplicate-json-key": (lambda v, s: _signed(v, canonical_json(claims_for(v, PrivateKey.generate()))[:-1]
                                                + b',"v":1}'), E.LicenseMalformed, "duplicate-key"),
    "non-canonical-json": (lambda v, s: _signed(v, json.dumps(claims_for(v, PrivateKey.generate())).encode()),
                           E.LicenseMalformed, "non-canonical-json"),
    "json-array": (lambda v, s: _signed(v, b"[1,2]"), E.LicenseMalformed, "bad-json"),
    "json-garbage": (lambda v, s: _signed(v, b"{not json"), E.LicenseMalformed, "bad-json"),
    "json-nan": (lambda v, s: _signed(v, b'{"v":NaN}'), E.LicenseMalformed, "bad-json"),
    "unknown-field": (lambda v, s: make_licence(v, admin=True), E.LicenseMalformed, "bad-claims"),
    "missing-field": (lambda v, s: _signed(v, canonical_json({k: x for k, x in claims_for(
        v, PrivateKey.generate()).items() if k != "exp"})), E.LicenseMalformed, "bad-claims"),
    "claims-version-2": (lambda v, s: make_licence(v, v=2), E.LicenseMalformed, "bad-claims"),
    "expiry-as-string": (lambda v, s: make_licence(v, exp="2099-01-01"), E.LicenseMalformed, "bad-claims"),
    "expiry-huge": (lambda v, s: make_licence(v, exp=2**60), E.LicenseMalformed, "bad-claims"),
    "features-unsorted": (lambda v, s: make_licence(v, features=["proxy", "kernel"]), E.LicenseMalformed,
                          "bad-claims"),
    "bad-version-spec": (lambda v, s: make_licence(v, versions="~~nonsense"), E.LicenseMalformed, "bad-claims"),
    "licensee-empty": (lambda v, s: make_licence(v, licensee=""), E.LicenseMalformed, "bad-claims"),
}  # fmt: skip


def _license_json(capsys) -> tuple[int, dict]:
    code = main(["license", "--json"])
    out = capsys.readouterr()
    assert "Traceback" not in out.out + out.err
    return code, json.loads(out.out)


def test_case_count():
    assert len(CASES) >= 40


@pytest.mark.parametrize("name", sorted(CASES))
def test_hostile_licence(name, trusted_vendor, stranger, monkeypatch, capsys, tmp_path):
    build, cls, reason = CASES[name]
    key = build(trusted_vendor, stranger)
    if "\x00" in key:  # an environment variable cannot hold NUL: deliver it as a key file
        (tmp_path / "key").write_text(key)
        monkeypatch.setenv("LM_PRIVATE_KEY_FILE", str(tmp_path / "key"))
    else:
        monkeypatch.setenv("LM_PRIVATE_KEY", key)
    code, doc = _license_json(capsys)
    assert code == 1
    assert doc["valid"] is False
    assert (doc["error"], doc["code"]) == (cls.__name__, cls.code), doc
    if reason is not None:
        assert doc.get("reason") == reason, doc
    if len(key) > 60:  # the secret is never echoed
        assert key[-43:] not in json.dumps(doc)


def test_positive_control_passes(trusted_vendor, monkeypatch, capsys):
    """The same path accepts a good key (so the hostile cases fail for their stated reason)."""
    monkeypatch.setenv("LM_PRIVATE_KEY", make_licence(trusted_vendor, nbf=NOW + 60))  # within clock skew
    code, doc = _license_json(capsys)
    assert code == 0 and doc["valid"] is True and doc["licensee"] == "Acme Test"


def test_no_key_at_all(capsys):
    code, doc = _license_json(capsys)
    assert code == 1 and doc["code"] == E.LicenseMissing.code


def test_key_file_missing(monkeypatch, tmp_path, capsys):
    monkeypatch.setenv("LM_PRIVATE_KEY_FILE", str(tmp_path / "nope.key"))
    code, doc = _license_json(capsys)
    assert (doc["code"], doc["reason"]) == (E.LicenseMissing.code, "file")


def test_key_file_works(trusted_vendor, monkeypatch, tmp_path):
    path = tmp_path / "lic.key"
    path.write_text(make_licence(trusted_vendor) + "\n")
    monkeypatch.setenv("LM_PRIVATE_KEY_FILE", str(path))
    assert require_feature("kernel").licensee == "Acme Test"


def test_wrong_feature(trusted_vendor, monkeypatch):
    monkeypatch.setenv("LM_PRIVATE_KEY", make_licence(trusted_vendor, features=["proxy"]))
    with pytest.raises(E.FeatureNotLicensed):
        require_feature("kernel")
    assert require_feature("proxy").features == ("proxy",)


def test_revoked(trusted_vendor, monkeypatch, tmp_path):
    key = make_licence(trusted_vendor)
    lid = require_feature_for(key, monkeypatch).lid
    rl = tmp_path / "rl.lmr"
    rl.write_text(sign_revocation_list(trusted_vendor, [lid], seq=3))
    monkeypatch.setenv("LM_REVOCATION_LIST", str(rl))
    reset_cache()
    with pytest.raises(E.LicenseRevoked):
        require_feature("kernel")


def test_older_revocation_list_is_refused(trusted_vendor, monkeypatch, tmp_path):
    monkeypatch.setenv("LM_PRIVATE_KEY", make_licence(trusted_vendor))
    rl = tmp_path / "rl.lmr"
    monkeypatch.setenv("LM_REVOCATION_LIST", str(rl))
    rl.write_text(sign_revocation_list(trusted_vendor, [], seq=5))
    require_feature("kernel")
    rl.write_text(sign_revocation_list(trusted_vendor, [], seq=4))
    reset_cache()
    with pytest.raises(E.RevocationListRollback):
        require_feature("kernel")


def test_revocation_list_from_stranger(trusted_vendor, stranger, monkeypatch, tmp_path):
    monkeypatch.setenv("LM_PRIVATE_KEY", make_licence(trusted_vendor))
    rl = tmp_path / "rl.lmr"
    rl.write_text(sign_revocation_list(stranger, [], seq=9))
    monkeypatch.setenv("LM_REVOCATION_LIST", str(rl))
    with pytest.raises(E.RevocationListInvalid) as info:
        require_feature("kernel")
    assert info.value.reason == "unknown-key"


def require_feature_for(key: str, monkeypatch):
    monkeypatch.setenv("LM_PRIVATE_KEY", key)
    return require_feature("kernel")
