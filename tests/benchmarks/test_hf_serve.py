"""The serving benchmark's own logic, without llama.cpp or a model: reading llama.cpp's output (a captured
fixture), the engine names, bytes per token, the targets and the table."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from benchmarks.hf.llama_cpp_text import parse_perf, parse_system_info
from benchmarks.hf.serve import add_arguments, bytes_per_token, engine_spec, median_row, targets
from benchmarks.hf.serve_report import format_rows, plot

FIXTURE = Path(__file__).parent / "fixtures" / "llama_cpp_stderr.txt"
SYSTEM_INFO = "CPU : SSE3 = 1 | AVX = 1 | AVX2 = 1 | F16C = 1 | FMA = 1 | AVX512 = 0 | AVX512_BF16 = 0 | OPENMP = 1 | "


def test_parse_llama_cpp_timing_lines():
    perf = parse_perf(FIXTURE.read_text())
    assert perf["prompt_eval"] == {"ms": 8916.62, "count": 1024, "ms_per_token": 8.71, "tokens_per_s": 114.84}
    assert perf["eval"] == {"ms": 566.51, "count": 24, "ms_per_token": 23.60, "tokens_per_s": 42.36}
    assert parse_perf("no timing here") == {}


def test_parse_llama_cpp_timing_lines_with_counters_off():
    """``no_perf``: llama.cpp prints zero times and ``inf`` rates; the parse gives ``None`` (valid JSON)."""
    line = "llama_perf_context_print: prompt eval time =       0.00 ms /  1024 tokens (    0.00 ms per token,      inf tokens per second)"  # noqa: E501
    assert parse_perf(line)["prompt_eval"] == {"ms": 0.0, "count": 1024, "ms_per_token": None, "tokens_per_s": None}


def test_parse_llama_cpp_system_info():
    info = parse_system_info(SYSTEM_INFO)
    assert info["AVX2"] and info["FMA"] and not info["AVX512"] and not info["AVX512_BF16"]
    assert "SSE3" in info and parse_system_info("") == {}


def _args(*argv):
    p = argparse.ArgumentParser()
    add_arguments(p)
    return p.parse_args(list(argv))


def test_engine_names_map_to_specs():
    spec = engine_spec("hybrid-int8", _args("--hybrid", "DIR"))
    assert (spec["engine"], spec["weights"], spec["dir"]) == ("hybrid", "int8", "DIR")
    assert engine_spec("llama.cpp", _args())["engine"] == "llama.cpp"
    assert engine_spec("original", _args())["weights"] == "fp32"
    with pytest.raises(SystemExit, match="unknown engine"):
        engine_spec("hybrid-int4", _args())


def _row(decode_ms, prefill, weight=100e6, cache=10e6):
    return {"decode_ms_per_step": decode_ms, "decode_cpu_ms_per_step": decode_ms / 2, "prefill_tokens_per_s": prefill,
            "prefill_tokens_per_cpu_s": prefill * 2, "weight_bytes": weight, "cache_bytes": cache,
            "bytes_per_token": weight + cache, "peak_rss_bytes": 2**30}  # fmt: skip


def test_repeated_runs_give_the_median_of_each_timed_figure():
    runs = [{**_row(d, p), "decode_tokens_per_s": 1e3 / d} for d, p in ((80, 250), (70, 300), (90, 200))]
    row = median_row(runs)
    assert (row["decode_ms_per_step"], row["decode_cpu_ms_per_step"], row["prefill_tokens_per_s"]) == (80, 40, 250)
    assert row["weight_bytes"] == 100e6 and [r["decode_ms_per_step"] for r in row["runs"]] == [80, 70, 90]
    assert "runs" not in median_row(runs[:1]) and median_row(runs[:1])["decode_ms_per_step"] == 80


def test_bytes_per_token_shares_weights_across_the_batch():
    row = {"weight_bytes": 160e6, "cache_bytes": 16 * 5e6}
    assert bytes_per_token(row) == 240e6 and bytes_per_token(row, 16) == 15e6


def test_targets_and_table_from_a_result():
    speed = {
        "original": {"1024": _row(60, 300)},
        "hybrid": {"1024": _row(62, 250)},
        "hybrid-int8": {"1024": _row(30, 260), "4096": _row(30, 260), "8192": _row(31, 250)},
        "llama.cpp": {"1024": _row(25, 110), "4096": _row(40, 80), "8192": _row(29, 60)},
    }
    result = {
        "speed": speed,
        "ppl": {"hybrid": {"ppl": 18.0, "tokens": 10}, "hybrid-int8": {"ppl": 18.5, "tokens": 10}},
    }
    got = targets(result)
    assert got["hybrid_over_original_decode_1024"]["hit_wall"]  # 62 / 60 = 1.033
    assert not got["hybrid_over_original_prefill_1024"]["hit_cpu"]  # 250 / 300 = 0.83
    assert got["hybrid_int8_over_llama_cpp_decode_1024"]["hit_wall"]  # 1.2 <= 1.5
    assert got["hybrid_int8_over_llama_cpp_decode_4096"]["hit_wall"]  # 0.75 < 1
    assert not got["hybrid_int8_over_llama_cpp_decode_8192"]["hit_wall"]  # 31 / 29 > 1
    assert not got["hybrid_int8_over_fp32_ppl"]["hit"]  # 18.5 / 18 = 1.028
    result["targets"] = got
    text = format_rows(result)
    assert "hybrid-int8" in text and "MISS" in text and "held-out ppl hybrid-int8: 18.500" in text


@pytest.mark.parametrize("with_batch", [True, False])
def test_plot_with_and_without_the_batch_part(tmp_path, with_batch):
    """A run of the speed part alone (``--parts speed``) still writes its PNG."""
    result = {"speed": {"hybrid": {"1024": _row(62, 250), "4096": _row(63, 240)}},
              "facts": {"threads": 1, "date": "2026-01-01"}}  # fmt: skip
    if with_batch:
        result["batch"] = {"context": 4096, "engines": {"hybrid": {"1": _row(62, 250), "4": _row(90, 250)}}}
    plot(result, tmp_path / "serve.png")
    assert (tmp_path / "serve.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
