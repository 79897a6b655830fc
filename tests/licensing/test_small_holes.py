"""Small holes — key files that are not files, loose permissions, BOM/whitespace, the secret
kept out of every generic view of a licence object, ``lm-vendor inspect`` on a vendor file whose key id lies."""

from __future__ import annotations

import copy
import dataclasses
import json
import os
import pickle
import threading

import pytest
from liquid_memory_vendor.cli import main as vendor_main

from liquid_memory import errors as E
from liquid_memory.licensing import current_licence, gate, require_feature
from liquid_memory.licensing.encoding import b64d, b64e
from tests.licensing.helpers import make_licence, make_vendor


def test_fifo_key_file_is_a_typed_error_not_a_hang(tmp_path, monkeypatch):
    fifo = tmp_path / "key.fifo"
    os.mkfifo(fifo)
    monkeypatch.setenv("LM_PRIVATE_KEY_FILE", str(fifo))
    result: list[BaseException] = []

    def read() -> None:
        try:
            require_feature("kernel")
        except BaseException as exc:  # noqa: BLE001 - the thread hands the outcome to the test
            result.append(exc)

    worker = threading.Thread(target=read, daemon=True)
    worker.start()
    worker.join(10)
    if worker.is_alive():  # unblock the reader (a writer opens the FIFO) before failing
        with open(fifo, "w"):
            pass
        pytest.fail("reading a FIFO key file blocked")
    assert isinstance(result[0], E.LicenseMissing) and result[0].reason == "not-regular-file", result


def test_directory_key_file_is_a_typed_error(tmp_path, monkeypatch):
    monkeypatch.setenv("LM_PRIVATE_KEY_FILE", str(tmp_path))
    with pytest.raises(E.LicenseMissing):
        require_feature("kernel")


def test_group_readable_key_file_warns_once(tmp_path, monkeypatch, trusted_vendor):
    path = tmp_path / "lax.key"
    path.write_text(make_licence(trusted_vendor))
    path.chmod(0o644)
    monkeypatch.setenv("LM_PRIVATE_KEY_FILE", str(path))
    monkeypatch.setattr(gate, "_warned_paths", set())
    with pytest.warns(gate.KeyFilePermissionWarning, match="chmod 600"):
        require_feature("kernel")
    path.chmod(0o600)
    gate.reset_cache()
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        require_feature("kernel")


@pytest.mark.parametrize("wrap", ["\ufeff{}", "\ufeff  \n{}\n\n", " \t\n" * 3000 + "{}" + "\r\n" * 3000])
def test_bom_and_whitespace_of_any_length_are_ignored(wrap, tmp_path, monkeypatch, trusted_vendor):
    key = make_licence(trusted_vendor)
    path = tmp_path / "k"
    path.write_text(wrap.format(key), encoding="utf-8")
    path.chmod(0o600)
    monkeypatch.setenv("LM_PRIVATE_KEY_FILE", str(path))
    assert require_feature("kernel").licensee == "Acme Test"
    gate.reset_cache()
    monkeypatch.delenv("LM_PRIVATE_KEY_FILE")
    monkeypatch.setenv("LM_PRIVATE_KEY", wrap.format(key))
    assert require_feature("kernel").licensee == "Acme Test"


def test_secret_is_not_reachable_from_the_licence_object(monkeypatch, trusted_vendor):
    key = make_licence(trusted_vendor)
    secret = key.rsplit(".", 1)[1]
    monkeypatch.setenv("LM_PRIVATE_KEY", key)
    lic = current_licence()
    ckid = next(iter(lic.sealed_content_keys))
    assert len(lic.content_key(ckid)) == 32  # the object can still unseal its keys
    views = [repr(lic), str(dataclasses.asdict(lic)), repr(vars(lic)), repr(copy.deepcopy(lic).__dict__)]
    raw = pickle.dumps(lic)
    for view in views:
        assert secret not in view
    secret_bytes = b64d(secret, "s", lambda m, r: ValueError(m))
    assert secret_bytes not in raw and all(secret_bytes.hex() not in v for v in views)
    with pytest.raises(E.ArtifactKeyUnavailable):  # a pickled copy carries no secret at all
        pickle.loads(raw).content_key(ckid)


def test_inspect_refuses_a_vendor_file_whose_key_id_does_not_match(tmp_path, capsys):
    honest, other = make_vendor("honest"), make_vendor("other")
    doc = {"format": "lm-vendor-key-v1", "kid": honest.kid, "public_key": b64e(other.public_key)}
    (tmp_path / "vendor.key").write_text(json.dumps(doc))
    (tmp_path / "lic").write_text(make_licence(other))
    assert vendor_main(["inspect", "--home", str(tmp_path), str(tmp_path / "lic")]) == 1
    err = capsys.readouterr().err
    assert "LM401" in err and "does not match" in err and "Traceback" not in err


def test_verify_warns_loudly_about_the_development_identity(capsys):
    from liquid_memory.cli import main

    assert main(["verify"]) == 0  # this checkout: development build, dev-signed source manifest
    captured = capsys.readouterr()
    assert "DEVELOPMENT" in captured.out and "WARNING" in captured.err
    assert main(["verify", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["development_identity"] is True


def test_a_changed_key_file_is_read_again_on_the_next_call(tmp_path, monkeypatch, trusted_vendor):
    """The gate re-reads a key file only when its stat changed (kernel calls pass it hundreds of times per
    token): every change an attacker or an operator makes after a good read must still take effect at once."""
    path = tmp_path / "k.key"
    path.write_text(make_licence(trusted_vendor))
    path.chmod(0o600)
    monkeypatch.setenv("LM_PRIVATE_KEY_FILE", str(path))
    gate.reset_cache()
    assert "kernel" in require_feature("kernel").features
    replacement = tmp_path / "other.key"  # same size, other content, renamed over the read file
    replacement.write_text(make_licence(trusted_vendor, features=["proxy"]))
    replacement.chmod(0o600)
    os.replace(replacement, path)
    with pytest.raises(E.FeatureNotLicensed):
        require_feature("kernel")
    path.write_text(make_licence(trusted_vendor))  # rewritten in place
    assert "kernel" in require_feature("kernel").features
    monkeypatch.setattr(gate, "_warned_paths", set())
    path.chmod(0o644)
    with pytest.warns(gate.KeyFilePermissionWarning):
        require_feature("kernel")
    path.unlink()
    with pytest.raises(E.LicenseMissing):
        require_feature("kernel")
    os.mkfifo(path)
    with pytest.raises(E.LicenseMissing, match="not a regular file"):
        require_feature("kernel")
