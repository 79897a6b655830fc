"""``lm-vendor issue`` dates: ``--not-before DAY`` starts at that day's 00:00:00 UTC, ``--expires DAY`` ends at
its 23:59:59 UTC, an ISO-8601 timestamp is that exact second; and the verifier's boundaries around them."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta

import pytest
from liquid_memory_vendor.cli import main as vendor_main
from liquid_memory_vendor.issue import parse_date

from liquid_memory import errors as E
from liquid_memory.licensing import verify_licence_text
from liquid_memory.licensing.licence import NOT_BEFORE_SKEW_S

DAY = "2030-01-01"
VERIFY_EACH = """
import json, sys
from liquid_memory import errors
from liquid_memory.licensing import verify_licence_text
for key in sys.argv[1:]:
    try:
        print(json.dumps({"valid": True, "not_before": verify_licence_text(key).not_before}))
    except errors.LiquidMemoryError as exc:
        print(json.dumps({"code": exc.code}))
"""
DAY_START = int(datetime(2030, 1, 1, tzinfo=UTC).timestamp())  # 1893456000


@pytest.mark.parametrize(
    "text, end_of_day, expected",
    [
        (DAY, False, DAY_START),
        (DAY, True, DAY_START + 86399),
        ("2030-01-01T12:30:00Z", False, DAY_START + 45000),
        ("2030-01-01T12:30:00Z", True, DAY_START + 45000),  # a timestamp is exact for either option
        ("2030-01-01T12:30", False, DAY_START + 45000),  # no zone: UTC
        ("2030-01-01T12:30:00+02:00", True, DAY_START + 45000 - 7200),
        ("2030-01-01 12:30:00Z", False, DAY_START + 45000),
    ],
)
def test_parse_date(text, end_of_day, expected):
    assert parse_date(text, end_of_day=end_of_day) == expected


@pytest.mark.parametrize("text", ["20300101", "2030-1-1", "2030-02-30", "tomorrow", "2030-01-01T25:00Z", "", "1893456"])
def test_parse_date_refuses_guesses(text):
    with pytest.raises(E.UsageError, match="YYYY-MM-DD"):
        parse_date(text, end_of_day=False)


@pytest.fixture(scope="module")
def home(tmp_path_factory):
    home = tmp_path_factory.mktemp("vendor")
    (home / "pass").write_text("dates passphrase\n")
    assert vendor_main(["init", "--home", str(home), "--passphrase-file", str(home / "pass")]) == 0
    return home


def _issue(home, tmp_path, *args: str) -> str:  # noqa: ANN001
    out = tmp_path / "k"
    common = ["--home", str(home), "--passphrase-file", str(home / "pass")]
    assert vendor_main(["issue", *common, "--licensee", "Dates", "--features", "kernel", "--out", str(out), *args]) == 0
    return out.read_text().strip()


def _claims(key: str) -> dict:
    import base64

    part = key.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))


def test_issued_days_are_whole_utc_days_and_verify_honours_the_boundaries(home, tmp_path, monkeypatch):
    from liquid_memory_vendor import keystore

    from liquid_memory.licensing.trust import DEV_TRUST_ENV

    key = _issue(home, tmp_path, "--not-before", DAY, "--expires", DAY)
    claims = _claims(key)
    assert claims["nbf"] == DAY_START and claims["exp"] == DAY_START + 86399
    vk = keystore.load(home / "vendor.key", b"dates passphrase")
    monkeypatch.setenv(DEV_TRUST_ENV, vk.trust_entry())
    with pytest.raises(E.LicenseNotYetValid):
        verify_licence_text(key, now=DAY_START - NOT_BEFORE_SKEW_S - 1)
    for ok in (DAY_START - NOT_BEFORE_SKEW_S, DAY_START, DAY_START + 86398):  # the documented 300 s skew
        assert verify_licence_text(key, now=ok).lid == claims["lid"]
    with pytest.raises(E.LicenseExpired):
        verify_licence_text(key, now=DAY_START + 86399)


def test_issue_refuses_a_licence_that_would_never_be_valid(home, tmp_path, capsys):
    common = ["--home", str(home), "--passphrase-file", str(home / "pass"), "--licensee", "X", "--features", "kernel"]
    assert vendor_main(["issue", *common, "--not-before", "2030-01-02", "--expires", DAY]) == 2
    assert vendor_main(["issue", *common, "--not-before", "2030-01-01T12:00Z", "--expires", "2030-01-01T12:00Z"]) == 2
    assert vendor_main(["issue", *common, "--expires", "2020-01-01"]) == 2  # not-before defaults to now
    err = capsys.readouterr().err
    assert err.count("must be before --expires") == 3 and "Traceback" not in err


@pytest.mark.slow
def test_release_install_accepts_a_licence_starting_today_and_refuses_one_starting_tomorrow(rel, tmp_path):
    """Issued with ``lm-vendor issue``, verified by the installed release (a release build)."""
    today = datetime.now(UTC).date()
    if (datetime.now(UTC) + timedelta(seconds=60)).date() != today:
        time.sleep(61)  # do not straddle midnight UTC
        today = datetime.now(UTC).date()
    until = (today + timedelta(days=3)).isoformat()
    keys = [_issue(rel.home, tmp_path, "--not-before", d.isoformat(), "--expires", until)
            for d in (today, today + timedelta(days=1))]  # fmt: skip
    res = rel.python(VERIFY_EACH, *keys)
    starts_today, starts_tomorrow = (json.loads(line) for line in res.stdout.strip().splitlines())
    assert starts_today == {"valid": True, "not_before": int(datetime(*today.timetuple()[:3], tzinfo=UTC).timestamp())}
    assert starts_tomorrow == {"code": "LM107"}, res.stderr[-2000:]
