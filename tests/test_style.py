"""The style the guide asks for, as a CI gate: ``ruff check`` and ``ruff format --check`` on every tracked Python
file (pinned ruff from the ``test`` extra). Markdown is left alone: its code blocks are documentation."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _ruff() -> str:
    ruff = Path(sys.executable).with_name("ruff")
    if ruff.exists():
        return str(ruff)
    found = shutil.which("ruff")
    if found is None:
        pytest.fail("ruff is not installed: it is part of the `test` extra (scripts/setup.sh test)")
    return found


def _python_files() -> list[str]:
    if not (ROOT / ".git").exists():
        pytest.skip("not a git checkout: the tracked files are unknown (an installed wheel has no tests to lint)")
    out = subprocess.run(["git", "ls-files", "*.py"], cwd=ROOT, capture_output=True, text=True, check=True)
    files = out.stdout.split()
    assert files, "git ls-files found no Python files"
    return files


@pytest.mark.parametrize("command", [["check"], ["format", "--check"]], ids=["check", "format"])
def test_ruff_is_clean(command: list[str]) -> None:
    result = subprocess.run([_ruff(), *command, *_python_files()], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, f"ruff {' '.join(command)} failed:\n{result.stdout[-4000:]}{result.stderr[-2000:]}"
