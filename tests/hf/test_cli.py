"""`liquid-memory linearize`: help, and a typed error instead of a traceback."""

from __future__ import annotations

import pytest

from liquid_memory.cli import main


def test_linearize_help_describes_every_option(capsys):
    from dataclasses import fields

    from liquid_memory.cli.linearize import build_parser
    from liquid_memory.hf.config import LinearizeConfig

    undocumented = [a.option_strings for a in build_parser()._actions if not a.help]
    assert undocumented == [], undocumented
    with pytest.raises(SystemExit) as info:
        main(["linearize", "--help"])
    out = capsys.readouterr().out
    assert info.value.code == 0
    for f in fields(LinearizeConfig):
        if f.name not in ("base_model", "extra"):
            assert "--" + f.name.replace("_", "-") in out, f.name


def test_linearize_unknown_model_is_a_clear_error(tmp_path, capsys):
    assert main(["linearize", "--model", "no-such-model", "--out", str(tmp_path / "o")]) == 1
    err = capsys.readouterr().err
    assert "LM705" in err and "smollm2-135m" in err and "Traceback" not in err
