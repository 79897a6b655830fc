"""The benchmark harness: honest memory numbers, the table/JSON/plot, and budget statuses."""

from __future__ import annotations

import json

import torch

from liquid_memory.bench.memory import peak_allocated_bytes
from liquid_memory.bench.run import run_benchmark
from liquid_memory.bench.timing import time_call


def test_peak_allocated_bytes_replays_allocations_and_frees():
    def work():
        a = torch.empty(1000, 1000)  # 4 MB
        b = torch.empty(2000, 1000)  # 8 MB -> peak 12 MB
        del a
        c = torch.empty(500, 1000)  # 2 MB while 8 MB is live
        return b, c

    assert peak_allocated_bytes(work) == 12_000_000


def test_time_call_returns_a_positive_median():
    assert 0 < time_call(lambda: torch.randn(100, 100) @ torch.randn(100, 100), budget_s=1.0) < 1.0


def test_small_benchmark_writes_table_json_and_plot(tmp_path, licensed, capsys):
    result = run_benchmark(
        64, 2, 1, (64, 128), "float32", out_dir=tmp_path, time_budget_s=2.0, memory_budget_gb=1e-6, progress=False
    )
    printed = capsys.readouterr().out
    assert "seq_len" in printed and "LM mem" in printed and "SDPA ms" in printed
    assert "Targets" not in printed  # the project's goals are printed only on request (--targets); always in the JSON
    data = json.loads(result["json"].read_text())
    assert {check["target"] for check in data["targets"]} >= {"forward vs SDPA at 8192 >= 2.5x"}
    assert [row["seq_len"] for row in data["rows"]] == [64, 128]
    first = data["rows"][0]
    for key in (
        "lm_fwd_ms",
        "floor_fwd_ms",
        "lm_floor_fwd_ms",
        "floor_fwdbwd_ms",
        "lm_floor_fwdbwd_ms",
        "lm_mem_mb",
        "sdpa_fwd_ms",
        "lm_fwdbwd_ms",
        "sdpa_fwdbwd_ms",
        "lm_decode_ms",
        "sdpa_decode_ms",
    ):
        assert first[key]["status"] == "ok" and first[key]["value"] > 0, key
    assert first["mha_fwd_ms"]["status"] == "skipped (over budget)"  # a 1-byte memory budget
    assert first["mha_w_mem_mb"]["status"] == "skipped (over budget)"
    assert "need_weights=False" in data["notes"] and "floor" in printed
    assert data["environment"]["liquid_scan_backend"] == "cpp"
    assert result["plot"].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_liquid_memory_benchmark_entry_point(tmp_path, licensed):
    from liquid_memory import LiquidMemory

    result = LiquidMemory.benchmark(32, 2, 1, (32,), torch.float32, "cpu", out_dir=None, backward=False,
                                    decode=False, progress=False, echo=False)  # fmt: skip
    row = result["rows"][0]
    assert row["lm_fwd_ms"]["value"] > 0 and row["mha_fwd_ms"]["value"] > 0
    assert "lm_fwdbwd_ms" not in row and result["json"] is None


def test_cli_bench_layer_and_mixer(tmp_path, licensed, capsys):
    from liquid_memory.cli import main

    assert main(["bench", "--embed-dim", "64", "--heads", "2", "--seq-lens", "64", "--out-dir", str(tmp_path),
                 "--no-backward", "--no-decode", "--time-budget", "1", "--targets"]) == 0  # fmt: skip
    printed = capsys.readouterr().out
    assert "LM ms" in printed and "Targets" in printed
    mixer_args = ["--backends", "chunked", "cpp", "--no-backward", "--quiet", "--budget-s", "1"]
    assert main(["bench", "--mixer", "--embed-dim", "64", "--heads", "2", "--seq-lens", "128", "--out-dir",
                 str(tmp_path), *mixer_args]) == 0  # fmt: skip
    assert (tmp_path / "mixer_float32.json").is_file()
    assert sorted(p.suffix for p in tmp_path.iterdir() if p.name.startswith("layer_")) == [".json", ".png"]


def test_projection_floor_runs_exactly_the_layer_gemms():
    from liquid_memory import LiquidMemory
    from liquid_memory.bench.peers import ProjectionFloor

    layer = LiquidMemory(32, 2, batch_first=True, decay_rank=4)
    x = torch.randn(1, 10, 32)
    with torch.autograd.profiler.profile() as prof:
        with torch.no_grad():
            ProjectionFloor(layer)(x)
    gemms = [e.name for e in prof.function_events if e.name in ("aten::addmm", "aten::mm", "aten::bmm")]
    assert len(gemms) == 4  # packed q/k/v, decay down, decay up, out_proj


def test_sdpa_decode_writes_into_the_preallocated_cache():
    from liquid_memory.bench.peers import SDPAAttention

    torch.manual_seed(0)
    sdpa = SDPAAttention(16, 2)
    x = torch.randn(1, 6, 16)
    cache_k, cache_v = torch.zeros(1, 2, 8, 8), torch.zeros(1, 2, 8, 8)
    with torch.no_grad():
        q, k, v = (t.view(1, 6, 2, 8).transpose(1, 2) for t in sdpa.in_proj(x).chunk(3, dim=-1))
        cache_k[:, :, :5], cache_v[:, :, :5] = k[:, :, :5], v[:, :, :5]
        step = sdpa.decode_step(x[:, 5:6], cache_k, cache_v, 5)
        full = sdpa(x)[:, 5:6]
    assert torch.allclose(cache_k[:, :, 5], k[:, :, 5]) and torch.allclose(step, full, atol=1e-6)


def test_extras_bandwidth_and_decode_vs_weight_read(licensed):
    from liquid_memory import LiquidMemory
    from liquid_memory.bench import extras

    assert extras.read_bandwidth_gbs(megabytes=32, repeats=2) > 0.1
    layer = LiquidMemory(32, 2, batch_first=True)
    result = extras.decode_vs_bandwidth(layer, 10.0)
    assert result["fp32"]["weight_mib"] == 2 * result["bf16"]["weight_mib"]
    assert result["fp32"]["ratio"] > 0 and result["bf16"]["decode_ms"] > 0
    sweep = extras.rank_sweep(32, 2, 64, ranks=(None, 4), budget_s=1.0)
    assert [r["decay_rank"] for r in sweep] == [None, 4] and sweep[1]["decay_params"] < sweep[0]["decay_params"]


def test_dtype_comparison_alternates_fp32_and_bf16(licensed):
    from liquid_memory.bench import extras

    result = extras.dtype_comparison(32, 2, 64, budget_s=1.0)
    assert set(result["ms"]) == {f"{p}_{d}" for p in ("lm", "floor", "sdpa") for d in ("fp32", "bf16")}
    assert result["lm_bf16_over_fp32"] > 0 and result["floor_bf16_over_fp32"] > 0
