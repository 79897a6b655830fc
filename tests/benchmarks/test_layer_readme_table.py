"""README's layer table, generated from the committed layer benchmark JSON (``benchmarks/layer/readme_table.py``)."""

from __future__ import annotations

import json
from pathlib import Path

from benchmarks.layer.readme_table import END, START, main


def test_readme_table_renders_and_updates_between_markers(tmp_path):
    """On the committed results (real data): every row rendered, the block between the markers replaced."""
    results = sorted((Path(__file__).parents[2] / "benchmarks" / "results" / "layer").glob("layer_*.json"))
    assert results, "benchmarks/results/layer/ holds the committed benchmark JSON"
    readme = tmp_path / "README.md"
    readme.write_text(f"# x\n{START}\nstale\n{END}\ntail\n", encoding="utf-8")
    assert main([*map(str, results), "--update", str(readme)]) == 0
    text = readme.read_text(encoding="utf-8")
    assert "stale" not in text and text.endswith(f"{END}\ntail\n")
    assert text.count("| T | floor ms | LM ms | LM/floor |") == len(results)
    rows = sum(len(json.loads(p.read_text())["rows"]) for p in results)
    assert sum(1 for line in text.splitlines() if line.startswith("| ") and line[2].isdigit()) >= rows
