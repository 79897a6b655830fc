"""The int8 GEMV microbenchmark end to end on one tiny shape: every engine and regime timed, the JSON with the CPU
flags, the table and the PNG written (no figure is checked: timings are the benchmark's business)."""

from __future__ import annotations

import argparse
import json

import benchmarks.hf.int8_gemv as int8_gemv


def test_writes_every_engine_and_regime(tmp_path, monkeypatch):
    import liquid_memory.bench.extras as extras

    monkeypatch.setattr(extras, "read_bandwidth_gbs", lambda: 10.0)  # the 512 MB floor read is not under test
    monkeypatch.setattr(int8_gemv, "SHAPES", {"tiny 24x40": (24, 40)})
    parser = argparse.ArgumentParser()
    int8_gemv.add_arguments(parser)
    args = parser.parse_args(["--rows", "1,3", "--cold-mb", "1", "--calls", "4", "--samples", "1",
                              "--out-dir", str(tmp_path), "--name", "tiny"])  # fmt: skip
    assert int8_gemv.run(args) == 0
    result = json.loads((tmp_path / "tiny.json").read_text())
    assert result["cpu_flags"].keys() >= {"avx2", "avx512f", "avx512_vnni", "avx512_bf16"}
    got = {(r["rows"], r["engine"], r["regime"]) for r in result["results"]}
    assert got == {(m, e, g) for m in (1, 3) for e in int8_gemv.ENGINES for g in ("cold", "hot")}
    assert all(r["us"] > 0 and r["weight_gbs"] > 0 for r in result["results"])
    assert (tmp_path / "tiny.txt").is_file() and (tmp_path / "tiny.png").is_file()
