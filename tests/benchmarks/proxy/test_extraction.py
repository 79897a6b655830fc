"""Benchmark smoke test on a tiny subset: rows, table and JSON are produced and the numbers are sane."""

from __future__ import annotations

import json
from pathlib import Path

from benchmarks.__main__ import main
from benchmarks.proxy.data import answer_found, load_essays, load_questions


def test_question_set_is_valid() -> None:
    essays = load_essays()
    questions = load_questions()
    assert len(questions) >= 30 and sum(q.paraphrase for q in questions) * 5 >= len(questions)
    for q in questions:
        assert answer_found(q.answer, essays[q.essay]), q.id


def test_bench_smoke(tmp_path: Path, capsys) -> None:  # noqa: ANN001
    out = tmp_path / "bench.json"
    argv = ["--limit", "3", "--extractors", "bm25,builtin", "--ratios", "20", "--doc-tokens", "3000"]
    assert main(["proxy-extraction", *argv, "--json", str(out)]) == 0
    table = capsys.readouterr().out
    assert "recall" in table and "builtin" in table and "bm25" in table
    report = json.loads(out.read_text())
    rows = report["rows"]
    assert [(r["extractor"], r["target_ratio"]) for r in rows] == [("bm25", 20.0), ("builtin", 20.0)]
    for r in rows:
        assert r["questions"] == 3 and 0.0 <= r["recall"] <= 1.0
        assert r["compression_mean"] >= 0.5 * r["target_ratio"]
        assert r["seconds_mean"] > 0
    assert rows[1]["recall"] == 1.0  # three direct questions on ~3k-token documents
