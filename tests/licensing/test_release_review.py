"""The security reviewer's flow: verify a vendor's release wheel from any environment before installing it
(``lm-vendor public-key`` + ``liquid-memory verify WHEEL --vendor-key``), and the customer's first commands
on a base install (the release wheel with torch and its declared requirements only)."""

from __future__ import annotations

import json
import re

import pytest

from liquid_memory.licensing.public_key import format_public_key, parse_public_key
from tests.licensing.helpers import make_vendor
from tests.licensing.release_env import (
    BIN,
    base_site,
    clean_env,
    install,
    member,
    public_key_line,
    rewrite_wheel,
)
from tests.licensing.release_env import run as run_cmd

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def keys(rel):
    """The release vendor's published line (the real ``lm-vendor public-key``), another vendor's, and the
    development identity's (``test_vendor_cli.py`` runs the command for those)."""
    from liquid_memory_vendor.dev import dev_vendor

    return {
        "vendor": public_key_line("--home", str(rel.home)),
        "other": format_public_key(make_vendor("another vendor").public_key),
        "dev": format_public_key(dev_vendor().public_key),
    }


def dev_verify(*args: str, state) -> object:  # noqa: ANN001
    """``liquid-memory verify`` of THIS development environment (which trusts only the development identity)."""
    return run_cmd([str(BIN / "liquid-memory"), "verify", *args], env=clean_env(LM_STATE_DIR=str(state)))


def in_process_verify(capsys, *args: str) -> tuple[int, str, str]:
    """The same command in this (development) process: the cases that need no fresh interpreter."""
    from liquid_memory.cli import main

    rc = main(["verify", *args])
    out = capsys.readouterr()
    return rc, out.out, out.err


def test_public_key_is_one_documented_line(rel, keys):
    line = keys["vendor"]
    assert re.fullmatch(r"lmpub1\.[0-9a-f]{16}\.[A-Za-z0-9_-]{43}", line) and "\n" not in line
    assert parse_public_key(line) == (rel.vendor.kid, rel.vendor.public_key)
    assert line == format_public_key(rel.vendor.public_key)
    assert keys["dev"].startswith("lmpub1.4a62e31359e195ac.")


def test_reviewer_verifies_the_genuine_wheel_and_rejects_another_vendors_key(rel, keys, tmp_path):
    """The console script of a development environment, which trusts only the development identity."""
    state = tmp_path / "state"
    res = dev_verify(str(rel.wheel), "--vendor-key", keys["vendor"], state=state)
    assert res.returncode == 0 and res.stdout.startswith("OK"), res.stdout + res.stderr
    assert "only the --vendor-key given" in res.stdout
    assert "DEVELOPMENT" not in res.stdout + res.stderr  # trust came from the vendor's key, not this build's
    res = dev_verify(str(rel.wheel), "--vendor-key", keys["other"], state=state)
    assert res.returncode == 1 and "LM204" in res.stdout, res.stdout
    assert f"signed by vendor key {rel.vendor.kid}, but --vendor-key is key" in res.stdout
    assert not state.exists() or not any(state.iterdir()), "verify --vendor-key persisted state"


def test_without_the_key_the_error_names_the_option_and_a_file_works_too(rel, keys, tmp_path, capsys):
    rc, out, _ = in_process_verify(capsys, str(rel.wheel))
    assert rc == 1 and "LM204" in out and "unknown-key" in out and "--vendor-key" in out, out
    (tmp_path / "vendor.pub").write_text(keys["vendor"] + "\n")
    rc, out, _ = in_process_verify(capsys, str(rel.wheel), "--vendor-key", str(tmp_path / "vendor.pub"), "--json")
    doc = json.loads(out)
    assert rc == 0 and doc["ok"] and doc["trust"] == "vendor-key" and not doc["development_identity"]
    assert doc["vendor_key_id"] == rel.vendor.kid


def test_bad_vendor_keys_are_usage_errors(rel, keys, tmp_path, capsys):
    spliced = keys["vendor"].rsplit(".", 1)[0] + "." + keys["other"].rsplit(".", 1)[1]  # right id, wrong key
    (tmp_path / "big.pub").write_text(keys["vendor"] + " " * 5000)
    for bad in (spliced, "lmpub1.zz", str(tmp_path / "missing.pub"), keys["vendor"][:-1] + "!", str(tmp_path),
                str(tmp_path / "big.pub")):  # fmt: skip
        rc, _, err = in_process_verify(capsys, str(rel.wheel), "--vendor-key", bad)
        assert rc == 2 and "--vendor-key" in err and "Traceback" not in err, (bad, err)


def test_reviewer_key_does_not_excuse_tampering_and_dev_signed_wheels_stay_loud(rel, keys, tmp_path, capsys):
    added = rewrite_wheel(rel.wheel, tmp_path / "added.whl", lambda ms: [*ms, (member("zz.pth"), b"import os\n")],
                          consistent_record=True)  # fmt: skip
    rc, out, _ = in_process_verify(capsys, str(added), "--vendor-key", keys["vendor"])
    assert rc == 1 and "LM208" in out and "zz.pth" in out, out
    rc, out, err = in_process_verify(capsys, str(rel.dev_wheel), "--vendor-key", keys["dev"])
    assert rc == 0 and "WARNING" in err and "DEVELOPMENT" in err, out + err
    # from the installed release (a release build trusting only its vendor): another vendor's wheel, by its key
    state = tmp_path / "state"
    res = rel.cli("verify", str(rel.dev_wheel), "--vendor-key", keys["dev"], LM_STATE_DIR=str(state))
    assert res.returncode == 0 and "DEVELOPMENT" in res.stderr, res.stdout + res.stderr


def test_base_install_runs_verify_and_license(rel, tmp_path):
    """The release wheel with torch and its declared requirements only: the customer's first two commands run."""
    base = base_site(rel.wheel, tmp_path / "base")
    bin_dir = install(rel.wheel, tmp_path / "venv", shared=[str(base)])
    env = clean_env(LM_STATE_DIR=str(tmp_path / "state"))
    probe = run_cmd([str(bin_dir / "python"), "-c", "import tokenizers"], env=env, cwd=tmp_path)
    assert probe.returncode == 1 and "No module named 'tokenizers'" in probe.stderr  # it is a base install
    res = run_cmd([str(bin_dir / "liquid-memory"), "verify"], env=env, cwd=tmp_path)
    assert res.returncode == 0 and res.stdout.startswith("OK"), res.stdout + res.stderr[-2000:]
    res = run_cmd([str(bin_dir / "liquid-memory"), "license", "--json"], env={**env, "LM_PRIVATE_KEY": rel.licence()},
                  cwd=tmp_path)  # fmt: skip
    assert res.returncode == 0 and json.loads(res.stdout)["valid"], res.stdout + res.stderr[-2000:]
