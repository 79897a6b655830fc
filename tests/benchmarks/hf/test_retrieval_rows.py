"""hf-retrieval's row syntax: ``weights=`` for the original and linearized rows, clear errors otherwise."""

from __future__ import annotations

import argparse

import pytest

from benchmarks.hf.retrieval import parse_row


def test_rows_take_a_weight_format():
    assert parse_row("orig8=original:weights=int8") == ("orig8", "original", {"weights": "int8"})
    assert parse_row("h=/models/h:mode=window,global_cache=8,weights=bf16") == (
        "h", "/models/h", {"mode": "window", "global_cache": 8, "weights": "bf16"},
    )  # fmt: skip


@pytest.mark.parametrize(
    ("row", "message"),
    [
        ("o=original:mode=window", "takes only weights="),
        ("h=/models/h:weights=int4", "weights must be one of"),
        ("h=/models/h:colour=red", "unknown setting"),
        ("no-source", "expected NAME=SOURCE"),
    ],
)
def test_bad_rows_are_refused_before_anything_runs(row, message):
    with pytest.raises(argparse.ArgumentTypeError, match=message):
        parse_row(row)
