"""`liquid-memory linearize` / `liquid-memory bench --hf`: help, and a typed error instead of a traceback."""

from __future__ import annotations

import pytest

from liquid_memory.cli import main


def test_bench_hf_has_its_own_help(capsys):
    with pytest.raises(SystemExit) as info:
        main(["bench", "--hf", "--help"])
    assert info.value.code == 0 and "--decode-contexts" in capsys.readouterr().out


def test_linearize_help_describes_every_option(capsys):
    import argparse
    from dataclasses import fields

    from liquid_memory.cli_hf import add_linearize
    from liquid_memory.hf.config import LinearizeConfig

    parser = argparse.ArgumentParser()
    add_linearize(parser.add_subparsers())
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices["linearize"]
    undocumented = [a.option_strings for a in sub._actions if not a.help]
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


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["--models", "wide_hybrid_after", "--parts", "ppl"], "--wide-hybrid DIR"),
        (["--models", "hybrid_after,pure_after", "--parts", "ppl"], "--hybrid DIR, --pure DIR"),
        (["--models", "hybrid_afterr", "--parts", "ppl"], "unknown hybrid_afterr"),
        (["--models", "wide_hybrid_after", "--parts", "agreement", "--wide-hybrid", "x"], "add original"),
    ],
)
def test_bench_hf_model_rows_without_their_dir_fail_before_loading(monkeypatch, argv, expected):
    """Every linearized row names the option its DIR comes from, and the check runs before any model loads."""
    import liquid_memory.hf.bench as bench

    def no_load(*args, **kwargs):
        raise AssertionError("a model was loaded before the arguments were checked")

    monkeypatch.setattr(bench, "load_smollm2", no_load)
    with pytest.raises(SystemExit) as info:
        main(["bench", "--hf", *argv])
    assert expected in str(info.value.code)
