"""`liquid-memory linearize` / `liquid-memory bench --hf`: help, and a typed error instead of a traceback."""

from __future__ import annotations

import pytest

from liquid_memory.cli import main


def test_bench_hf_has_its_own_help(capsys):
    with pytest.raises(SystemExit) as info:
        main(["bench", "--hf", "--help"])
    assert info.value.code == 0 and "--decode-contexts" in capsys.readouterr().out


def test_linearize_unknown_model_is_a_clear_error(tmp_path, capsys):
    assert main(["linearize", "--model", "no-such-model", "--out", str(tmp_path / "o")]) == 1
    err = capsys.readouterr().err
    assert "LM705" in err and "smollm2-135m" in err and "Traceback" not in err
