"""``lm-vendor`` end to end on a throwaway vendor home: init, issue, inspect, revoke."""

from __future__ import annotations

import hashlib
import json
import stat

import pytest
from liquid_memory_vendor import keystore
from liquid_memory_vendor.cli import main

from liquid_memory import errors as E
from liquid_memory.licensing import require_feature, reset_cache
from liquid_memory.licensing.trust import DEV_TRUST_ENV


@pytest.fixture(scope="module")
def home(tmp_path_factory):
    home = tmp_path_factory.mktemp("vendor")
    (home / "pass").write_text("correct horse battery staple\n")
    assert main(["init", "--home", str(home), "--passphrase-file", str(home / "pass"), "--label", "Test"]) == 0
    return home


def test_key_is_encrypted_at_rest(home):
    raw = (home / "vendor.key").read_text()
    doc = json.loads(raw)
    assert stat.S_IMODE((home / "vendor.key").stat().st_mode) == 0o600
    assert doc["kdf"]["alg"] == "argon2id13" and doc["kdf"]["opslimit"] >= 3  # MODERATE
    vk = keystore.load(home / "vendor.key", b"correct horse battery staple")
    assert keystore._err  # noqa: B018 - module loaded
    from liquid_memory.licensing.encoding import b64e

    assert b64e(bytes(vk.signing_key)) not in raw


def test_wrong_passphrase(home, tmp_path, capsys):
    (tmp_path / "bad").write_text("nope")
    assert main(["issue", "--home", str(home), "--passphrase-file", str(tmp_path / "bad"), "--licensee", "X",
                 "--expires", "2099-01-01", "--features", "kernel"]) == 1  # fmt: skip
    err = capsys.readouterr().err
    assert E.VendorKeyInvalid.code in err and "Traceback" not in err


def test_issue_inspect_revoke_round_trip(home, tmp_path, monkeypatch, capsys):
    args = ["--home", str(home), "--passphrase-file", str(home / "pass")]
    out = tmp_path / "acme.key"
    assert main(["issue", *args, "--licensee", "Acme", "--expires", "2099-12-31", "--features", "kernel,proxy",
                 "--versions", ">=0.1,<1", "--out", str(out)]) == 0  # fmt: skip
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    capsys.readouterr()
    assert main(["inspect", *args, str(out)]) == 0
    claims = json.loads(capsys.readouterr().out)
    assert claims["licensee"] == "Acme" and claims["features"] == ["kernel", "proxy"]
    assert claims["versions"] == ">=0.1,<1" and claims["status"] == "valid"
    assert out.read_text().strip().rsplit(".", 1)[1] not in json.dumps(claims)  # secret never shown

    vk = keystore.load(home / "vendor.key", b"correct horse battery staple")
    monkeypatch.setenv(DEV_TRUST_ENV, vk.trust_entry())
    monkeypatch.setenv("LM_PRIVATE_KEY", out.read_text())
    assert require_feature("kernel").licensee == "Acme"

    assert main(["revoke", *args, claims["licence_id"]]) == 0
    monkeypatch.setenv("LM_REVOCATION_LIST", str(home / "revocations.lmr"))
    reset_cache()
    with pytest.raises(E.LicenseRevoked):
        require_feature("kernel")


def test_usage_errors(home, capsys):
    assert main(["revoke", "--home", str(home), "--passphrase-file", str(home / "pass"), "not-an-id"]) == 2
    assert main(["issue", "--home", str(home), "--passphrase-file", str(home / "pass"), "--licensee", "X",
                 "--expires", "tomorrow", "--features", "kernel"]) == 2  # fmt: skip
    assert "Traceback" not in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["issue", "--help"])


def test_release_command_writes_a_verifiable_distribution(tmp_path, capsys):
    """``lm-vendor release --no-wheel`` from prebuilt packages: encrypted files, metadata, signed manifest."""
    from pathlib import Path

    from liquid_memory_vendor.dev import dev_vendor

    from liquid_memory.artifacts.crypto import decrypt, read_key_id
    from liquid_memory.manifest import verify_path

    repo = Path(__file__).resolve().parents[2]
    meta = json.loads((repo / "dist_public" / "AOTI_METADATA.json").read_text())
    entry = next(a for a in meta["artifacts"] if a["dtype"] == "float32" and a["head_dim"] == 64)
    blob = (repo / entry["file"]).read_bytes()
    plain = decrypt(blob, dev_vendor().content_keys[read_key_id(blob)], name=entry["name"], version=meta["version"])
    prebuilt = tmp_path / "prebuilt"
    prebuilt.mkdir()
    (prebuilt / entry["name"]).write_bytes(plain)
    info = {k: v for k, v in entry.items() if k != "file"}
    (prebuilt / f"{entry['name']}.json").write_text(json.dumps(info))
    out = tmp_path / "out"
    out.mkdir()
    home = tmp_path / "home"
    home.mkdir()
    args = ["release", "--dev", "--no-wheel", "--repo", str(out), "--prebuilt", str(prebuilt), "--home", str(home)]
    (out / "dist_public" / "stale" / "kernels").mkdir(parents=True)  # leftovers never reach a release
    (out / "dist_public" / "stale" / "kernels" / "old.so").write_bytes(b"\x7fELF")
    assert main(args) == 0
    assert verify_path(out).ok
    files = sorted(p.name for p in (out / "dist_public").iterdir())
    assert files == ["AOTI_METADATA.json", f"{entry['name']}.enc", "revocations.lmr"]
    assert plain[:4096] not in (out / "dist_public" / f"{entry['name']}.enc").read_bytes()
    (prebuilt / entry["name"]).write_bytes(plain[:-1])  # a damaged build output is refused
    assert main(args) == 2 and "does not match its build info" in capsys.readouterr().err


def test_damaged_vendor_key_file(tmp_path, capsys):
    (tmp_path / "pass").write_text("pw")
    for content in ("not json", '{"format": "lm-vendor-key-v1"}', '{"format": "lm-vendor-key-v1", "kdf": 3}'):
        (tmp_path / "vendor.key").write_text(content)
        args = ["issue", "--home", str(tmp_path), "--passphrase-file", str(tmp_path / "pass"), "--licensee", "X"]
        assert main([*args, "--expires", "2099-01-01", "--features", "kernel"]) == 1
        err = capsys.readouterr().err
        assert E.VendorKeyInvalid.code in err and "Traceback" not in err


def test_public_key_prints_the_published_line_without_a_passphrase(home, tmp_path, capsys):
    from liquid_memory.licensing.public_key import parse_public_key

    vk = keystore.load(home / "vendor.key", b"correct horse battery staple")
    assert main(["public-key", "--home", str(home)]) == 0
    out = capsys.readouterr().out
    assert out.count("\n") == 1 and parse_public_key(out) == (vk.kid, vk.public_key)
    assert main(["public-key", "--home", str(tmp_path)]) == 1  # no vendor.key there
    assert "LM401" in capsys.readouterr().err
    assert main(["public-key", "--dev"]) == 0
    assert capsys.readouterr().out.startswith("lmpub1.4a62e31359e195ac.")


def test_release_refuses_a_folder_git_does_not_track_before_writing_anything(tmp_path, capsys):
    """A wheel is built from the files git tracks; a plain folder is refused before dist_public/ is touched."""
    (tmp_path / "prebuilt").mkdir()
    (tmp_path / "prebuilt" / "x.pt2").write_bytes(b"pt2")
    info = {"name": "x.pt2", "plaintext_sha256": hashlib.sha256(b"pt2").hexdigest()}
    (tmp_path / "prebuilt" / "x.pt2.json").write_text(json.dumps(info))
    (tmp_path / "repo").mkdir()
    args = ["release", "--dev", "--repo", str(tmp_path / "repo"), "--prebuilt", str(tmp_path / "prebuilt"),
            "--home", str(tmp_path), "--wheel-dir", str(tmp_path / "out")]  # fmt: skip
    assert main(args) == 2
    assert "not a git checkout" in capsys.readouterr().err
    assert not (tmp_path / "repo" / "dist_public").exists() and not (tmp_path / "out").exists()
