"""The style the guide asks for, as a CI gate: ``ruff check`` and ``ruff format --check`` over the repository with
ruff's own file discovery (pinned ruff from the ``test`` extra; .gitignore'd files, virtual environments and, by
pyproject's ``extend-exclude``, Markdown are left out)."""

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


@pytest.mark.parametrize("command", [["check"], ["format", "--check"]], ids=["check", "format"])
def test_ruff_is_clean(command: list[str]) -> None:
    result = subprocess.run([_ruff(), *command, "."], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, f"ruff {' '.join(command)} failed:\n{result.stdout[-4000:]}{result.stderr[-2000:]}"
    assert "No Python files found" not in result.stdout + result.stderr  # it really looked at the code
