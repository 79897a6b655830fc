"""The layer results page's tables, generated from the committed layer benchmark JSON
(``benchmarks/layer/readme_table.py``)."""

from __future__ import annotations

import json
import re
from pathlib import Path

from benchmarks.layer.readme_table import END, START, main, render

LAYER = Path(__file__).parents[2] / "benchmarks" / "results" / "layer"


def test_readme_table_renders_and_updates_between_markers(tmp_path):
    """On the committed results (real data): every row rendered, the block between the markers replaced."""
    results = sorted(LAYER.glob("layer_*.json"))
    assert results, "benchmarks/results/layer/ holds the committed benchmark JSON"
    page = tmp_path / "README.md"
    page.write_text(f"# x\n{START}\nstale\n{END}\ntail\n", encoding="utf-8")
    assert main([*map(str, results), "--update", str(page)]) == 0
    text = page.read_text(encoding="utf-8")
    assert "stale" not in text and text.endswith(f"{END}\ntail\n")
    assert text.count("| T | floor ms | LM ms | LM/floor |") == len(results)
    rows = sum(len(json.loads(p.read_text())["rows"]) for p in results)
    assert sum(1 for line in text.splitlines() if line.startswith("| ") and line[2].isdigit()) >= rows


def test_results_page_block_is_the_generators_output():
    """The committed page shows exactly what its own reproduce command generates from the committed JSON."""
    page = (LAYER / "README.md").read_text(encoding="utf-8")
    command = page[page.index("python -m benchmarks.layer.readme_table") :]
    runs = re.findall(r"benchmarks/results/layer/(layer_\S+\.json)", command.split("--update")[0])
    assert len(runs) == len(set(runs)) >= 2
    block = page.split(START, 1)[1].split(END, 1)[0]
    assert block == "\n" + render([LAYER / name for name in runs])
