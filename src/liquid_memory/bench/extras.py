"""Same-run extras of the layer benchmark: memory bandwidth and decode against the weight-read time (fp32 and
bf16 weights), the ``decay_rank`` speed sweep, and a whole model under ``torch.compile`` vs eager."""

from __future__ import annotations

import statistics
import time

import torch
from torch import nn

from liquid_memory.bench.peers import ProjectionFloor
from liquid_memory.bench.timing import paired_ratio, time_call, time_interleaved
from liquid_memory.nn.liquid_memory import LiquidMemory
from liquid_memory.nn.swap import replace_attention

DECODE_TOKENS = 64


def read_bandwidth_gbs(megabytes: int = 512, repeats: int = 5) -> float:
    """Memory read bandwidth (GB/s): the best of ``repeats`` sums over a buffer far larger than any cache."""
    buffer = torch.ones(megabytes * 2**20 // 4)
    buffer.sum()
    best = min(_seconds(buffer.sum) for _ in range(repeats))
    return buffer.numel() * 4 / best / 1e9


def _seconds(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def weight_bytes(module: nn.Module) -> int:
    return sum(p.numel() * p.element_size() for p in module.parameters())


def decode_ms(layer: LiquidMemory, context: int = 1024, tokens: int = DECODE_TOKENS) -> float:
    """Milliseconds per ``step()`` after a prefill of ``context`` tokens (the state is O(1) in context)."""
    dtype = layer.out_proj.weight.dtype
    x = torch.randn(1, context, layer.embed_dim, dtype=dtype)
    with torch.inference_mode():
        layer.reset_state()
        layer.prefill(x)
        token = x[:, -1]
        ms = time_call(lambda: [layer.step(token) for _ in range(tokens)]) * 1e3 / tokens
    layer.reset_state()
    return ms


def decode_vs_bandwidth(layer: LiquidMemory, bandwidth_gbs: float) -> dict:
    """Decode per token against reading the layer's weights once at the measured bandwidth, fp32 and bf16."""
    out: dict = {"read_bandwidth_gbs": bandwidth_gbs}
    for name, dtype in (("fp32", torch.float32), ("bf16", torch.bfloat16)):
        module = layer if layer.out_proj.weight.dtype == dtype else _copy(layer, dtype)
        step = decode_ms(module)
        read = weight_bytes(module) / (bandwidth_gbs * 1e9) * 1e3
        out[name] = {"decode_ms": step, "weight_mib": weight_bytes(module) / 2**20, "weight_read_ms": read,
                     "ratio": step / read}  # fmt: skip
    return out


def _copy(layer: LiquidMemory, dtype: torch.dtype) -> LiquidMemory:
    conv = layer.qkv_conv
    copy = LiquidMemory(layer.embed_dim, layer.num_heads, batch_first=True, backend=layer.backend,
                        decay_rank=layer.decay_rank, short_conv=layer.short_conv,
                        short_conv_activation=None if conv is None else conv.activation, dtype=dtype)  # fmt: skip
    copy.load_state_dict(layer.state_dict())
    return copy


def rank_sweep(embed_dim: int, num_heads: int, length: int, ranks=(None, 16, 64), budget_s: float = 60.0) -> list:
    """Forward time, its floor, and decode per ``decay_rank`` (all ranks alternated round by round)."""
    torch.manual_seed(0)
    layers = {r: LiquidMemory(embed_dim, num_heads, batch_first=True, decay_rank=r) for r in ranks}
    x = torch.randn(1, length, embed_dim)
    fns = {}
    for r, layer in layers.items():
        fns[f"lm{r}"] = lambda layer=layer: layer(x, x, x, is_causal=True, need_weights=False)
        fns[f"floor{r}"] = lambda layer=layer: ProjectionFloor(layer)(x)
    with torch.inference_mode():
        samples = time_interleaved(fns, budget_s=budget_s)
    full = samples["lmNone"] if None in layers else None
    rows = []
    for r, layer in layers.items():
        lm, floor = samples[f"lm{r}"], samples[f"floor{r}"]
        rows.append({
            "decay_rank": r, "seq_len": length, "fwd_ms": statistics.median(lm) * 1e3,
            "floor_ms": statistics.median(floor) * 1e3, "lm_floor": paired_ratio(lm, floor),
            "fwd_vs_full_rank": None if full is None else paired_ratio(lm, full),
            "decode_ms": decode_ms(layer), "decay_params": sum(p.numel() for p in layer.decay_proj.parameters()),
        })  # fmt: skip
    return rows


def compile_vs_eager(embed_dim: int, num_heads: int, length: int, layers: int = 2) -> dict:
    """``nn.TransformerEncoder`` with every attention swapped for LiquidMemory: eager vs ``torch.compile``
    forward (inference, causal), same inputs, alternated."""
    torch.manual_seed(0)
    block = nn.TransformerEncoderLayer(embed_dim, num_heads, 4 * embed_dim, dropout=0.0, batch_first=True)
    model = replace_attention(nn.TransformerEncoder(block, layers, enable_nested_tensor=False)).eval()
    x = torch.randn(1, length, embed_dim)
    mask = nn.Transformer.generate_square_subsequent_mask(length)
    compiled = torch.compile(model)
    with torch.no_grad():
        t0 = time.perf_counter()
        compiled(x, mask=mask, is_causal=True)
        compile_s = time.perf_counter() - t0
        eager_out = model(x, mask=mask, is_causal=True)
        max_diff = (compiled(x, mask=mask, is_causal=True) - eager_out).abs().max().item()
        runs = {"eager": model, "compiled": compiled}
        samples = time_interleaved(
            {k: (lambda m=m: m(x, mask=mask, is_causal=True)) for k, m in runs.items()}, budget_s=60.0
        )
    return {
        "model": f"nn.TransformerEncoder({layers} layers, d_model={embed_dim}, nhead={num_heads}, ff={4 * embed_dim})"
        " with LiquidMemory attention", "seq_len": length, "compile_s": compile_s,
        "eager_ms": statistics.median(samples["eager"]) * 1e3,
        "compiled_ms": statistics.median(samples["compiled"]) * 1e3,
        "eager_over_compiled": paired_ratio(samples["eager"], samples["compiled"]), "max_abs_diff": max_diff,
    }  # fmt: skip


def dtype_comparison(embed_dim: int, num_heads: int, length: int, budget_s: float = 120.0) -> dict:
    """fp32 vs bf16, same weights, alternated round by round: the layer forward, its floor, and SDPA's."""
    from liquid_memory.bench.peers import SDPAAttention

    torch.manual_seed(0)
    fns, layers = {}, {}
    for name, dtype in (("fp32", torch.float32), ("bf16", torch.bfloat16)):
        layer = LiquidMemory(embed_dim, num_heads, batch_first=True, dtype=dtype)
        if layers:
            layer.load_state_dict(layers["fp32"].state_dict())
        layers[name] = layer
        sdpa = SDPAAttention(embed_dim, num_heads, dtype=dtype)
        x = torch.randn(1, length, embed_dim, generator=torch.Generator().manual_seed(1)).to(dtype)
        fns[f"lm_{name}"] = lambda layer=layer, x=x: layer(x, x, x, is_causal=True, need_weights=False)
        fns[f"floor_{name}"] = lambda layer=layer, x=x: ProjectionFloor(layer)(x)
        fns[f"sdpa_{name}"] = lambda sdpa=sdpa, x=x: sdpa(x)
    with torch.inference_mode():
        samples = time_interleaved(fns, budget_s=budget_s, max_repeats=3)
    out: dict = {"seq_len": length, "ms": {k: statistics.median(v) * 1e3 for k, v in samples.items()}}
    for part in ("lm", "floor", "sdpa"):
        out[f"{part}_bf16_over_fp32"] = paired_ratio(samples[f"{part}_bf16"], samples[f"{part}_fp32"])
    return out


def main(argv: list[str] | None = None) -> int:
    """``python -m liquid_memory.bench.extras --dtype-compare OUT.json``: the fp32-vs-bf16 comparison."""
    import argparse
    import json
    from pathlib import Path

    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("--dtype-compare", type=Path, required=True, help="JSON file to write")
    parser.add_argument("--embed-dim", type=int, default=1024)
    parser.add_argument("--heads", type=int, default=16)
    parser.add_argument("--seq-len", type=int, default=8192)
    args = parser.parse_args(argv)
    result = dtype_comparison(args.embed_dim, args.heads, args.seq_len)
    result["environment"] = {"torch": torch.__version__, "threads": torch.get_num_threads(),
                             "cpu_capability": torch.backends.cpu.get_cpu_capability()}  # fmt: skip
    args.dtype_compare.write_text(json.dumps(result, indent=2), encoding="utf-8")
    print(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
