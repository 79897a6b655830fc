"""The published vendor key line (``lmpub1.``) and ``verify_path(vendor_key=...)``: exactly that key, this once."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest
from liquid_memory_vendor.dev import dev_vendor

from liquid_memory import errors as E
from liquid_memory.licensing.encoding import b64e
from liquid_memory.licensing.public_key import format_public_key, parse_public_key, read_public_key
from liquid_memory.licensing.seen import newest_seen
from liquid_memory.manifest.verify import SEEN_FILE, verify_path
from tests.licensing.helpers import make_dist

REPO = Path(__file__).resolve().parents[2]


def test_line_round_trips_and_tolerates_only_whitespace(vendor):
    line = format_public_key(vendor.public_key)
    assert line == f"lmpub1.{vendor.kid}.{b64e(vendor.public_key)}"
    for text in (line, f"  {line}\n", f"\ufeff{line}\r\n"):
        assert parse_public_key(text) == (vendor.kid, vendor.public_key)


@pytest.mark.parametrize(
    "mangle, reason",
    [
        (lambda line, other: line.replace("lmpub1.", "lmpub2."), "bad-vendor-key"),
        (lambda line, other: line.upper(), "bad-vendor-key"),
        (lambda line, other: line + ".x", "bad-vendor-key"),
        (lambda line, other: line[:-1], "bad-vendor-key"),
        (lambda line, other: line[:-1] + ("B" if line[-1] != "B" else "C"), "non-canonical-base64"),
        (lambda line, other: line.rsplit(".", 1)[0] + "." + other.rsplit(".", 1)[1], "kid-mismatch"),
        (lambda line, other: f"{line}\n{other}", "bad-vendor-key"),
    ],
)
def test_malformed_or_spliced_lines_are_refused(vendor, stranger, mangle, reason):
    line, other = format_public_key(vendor.public_key), format_public_key(stranger.public_key)
    with pytest.raises(E.UsageError) as info:
        parse_public_key(mangle(line, other))
    assert info.value.reason == reason


def test_file_form_is_a_regular_bounded_file(vendor, tmp_path):
    line = format_public_key(vendor.public_key)
    (tmp_path / "k.pub").write_text(line + "\n")
    assert read_public_key(str(tmp_path / "k.pub")) == (vendor.kid, vendor.public_key)
    (tmp_path / "big.pub").write_text(line + " " * 5000)
    fifo = tmp_path / "k.fifo"
    os.mkfifo(fifo)
    for path, reason in ((tmp_path / "big.pub", "too-large"), (tmp_path, "not-regular-file"),
                         (tmp_path / "missing", "unreadable")):  # fmt: skip
        with pytest.raises(E.UsageError) as info:
            read_public_key(str(path))
        assert info.value.reason == reason
    outcome: list[BaseException] = []
    worker = threading.Thread(target=lambda: outcome.append(pytest.raises(E.UsageError, read_public_key, str(fifo))))
    worker.start()
    worker.join(10)
    if worker.is_alive():
        with open(fifo, "w"):
            pass
        pytest.fail("reading a FIFO as --vendor-key blocked")
    assert outcome and outcome[0].value.reason == "not-regular-file"


def test_verify_trusts_exactly_the_given_key_and_remembers_nothing(vendor, stranger, tmp_path):
    root = make_dist(stranger, tmp_path / "dist", sequence=7)
    assert verify_path(root).problems[0].reason == "unknown-key"  # this build does not trust the stranger
    report = verify_path(root, vendor_key=(stranger.kid, stranger.public_key))
    assert report.ok and report.pinned and not report.development, report.to_dict()["problems"]
    assert newest_seen(SEEN_FILE, stranger.kid) == -1  # nothing persisted
    report = verify_path(root, vendor_key=(vendor.kid, vendor.public_key))  # another vendor's key
    (problem,) = report.problems
    assert problem.code == "LM204" and f"but --vendor-key is key {vendor.kid}" in problem.detail
    # the pinned key replaces, not extends, what the build trusts: this checkout's distribution (signed by the
    # development identity) does not verify under a stranger's key; under the development key it warns
    assert verify_path(REPO, vendor_key=(stranger.kid, stranger.public_key)).problems[0].code == "LM204"
    dev = verify_path(REPO, vendor_key=parse_public_key(format_public_key(dev_vendor().public_key)))
    assert dev.ok and dev.pinned and dev.development


def test_the_command_names_the_option_and_the_loader_does_not(stranger, tmp_path, capsys):
    from liquid_memory.cli import main

    root = make_dist(stranger, tmp_path / "dist")
    assert main(["verify", str(root)]) == 1
    out = capsys.readouterr().out
    assert "LM204" in out and "unknown-key" in out and "--vendor-key" in out, out
    (problem,) = verify_path(root).problems  # the SDK's own self-check: not a reviewer's command
    assert problem.reason == "unknown-key" and "--vendor-key" not in str(problem)
    assert main(["verify", str(root), "--vendor-key", format_public_key(stranger.public_key)]) == 0
    assert "only the --vendor-key given" in capsys.readouterr().out
