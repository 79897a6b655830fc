"""The proxy's benchmarks are wired into ``python -m benchmarks`` with their own options."""

from __future__ import annotations

import pytest

from benchmarks.__main__ import main


@pytest.mark.parametrize(
    ("name", "option"),
    [("proxy-extraction", "--extractors"), ("proxy-overhead", "--requests"), ("proxy-memory", "--linearized")],
)
def test_proxy_benchmarks_have_their_options(capsys, name, option):
    with pytest.raises(SystemExit) as exc:
        main([name, "--help"])
    out = capsys.readouterr().out
    assert exc.value.code == 0 and f"python -m benchmarks {name}" in out and option in out
