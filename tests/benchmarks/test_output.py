"""The benchmarks' shared table and PNG writers (benchmarks/output.py)."""

from __future__ import annotations

from benchmarks.output import format_table, write_bar_png


def test_table_aligns_columns_and_marks_missing_cells():
    text = format_table([{"model": "liquid", "ms": 1.23456}, {"model": "attention", "tokens": 7}])
    header, rule, first, second = text.splitlines()
    assert header.split() == ["model", "ms", "tokens"] and set(rule.replace(" ", "")) == {"-"}
    assert first.split() == ["liquid", "1.23", "–"] and second.split() == ["attention", "–", "7"]
    assert len({line.index("ms") for line in (header,)}) == 1 and first.index("1.23") == header.index("ms")


def test_bar_png_is_written(tmp_path):
    path = write_bar_png(tmp_path / "sub" / "bars.png", {"T=1": {"a": 1.0, "b": 2.0}, "T=2": {"a": 3.0}}, "ms", "t")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
