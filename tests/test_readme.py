"""README.md is the user guide: short, its headline table generated from the committed results, its quick start
runnable as written, its links pointing at files that exist."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from benchmarks.headline import END, START, render
from tests.dev_licence import dev_licence

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text(encoding="utf-8")


def test_readme_is_a_short_guide() -> None:
    assert len(README.splitlines()) <= 250


def test_headline_table_is_the_generators_output() -> None:
    """Regenerate with ``python -m benchmarks.headline --update README.md`` after committing new results."""
    block = README.split(START, 1)[1].split(END, 1)[0]
    assert block == "\n" + render()
    assert "**missed**" in block and "| met |" in block  # an honest table shows both


def test_quick_start_runs_as_written(tmp_path: Path) -> None:
    """The first Python block after "## Quick start", in a fresh interpreter under a development licence."""
    section = README.split("## Quick start", 1)[1]
    code = re.search(r"```python\n(.*?)```", section, re.DOTALL).group(1)
    env = {**os.environ, "LM_PRIVATE_KEY": dev_licence(), "OMP_NUM_THREADS": "1"}
    env.pop("LM_PRIVATE_KEY_FILE", None)
    env.pop("LM_BACKEND", None)
    result = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True,
                            timeout=300)  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    assert "torch.Size([2, 1024, 256]) torch.Size([2, 256]) torch.Size([2, 4, 64, 64])" in result.stdout


def test_links_and_paths_exist() -> None:
    """Every relative markdown link and every results page the README names is a file in the checkout."""
    targets = re.findall(r"\]\(([^)#:]+)\)", README) + re.findall(r"`((?:docs|proxy|benchmarks)/[\w/.-]+\.md)`", README)
    assert targets
    missing = [t for t in targets if not (ROOT / t).exists()]
    assert not missing, missing
