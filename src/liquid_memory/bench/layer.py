"""The layer benchmark: LiquidMemory vs its own projection GEMMs (the floor), nn.MultiheadAttention and an
SDPA layer, side by side in one run.

For every sequence length it measures forward time and peak extra memory (inference), forward+backward
time (training), and decode time per token at that context. The layer and its floor are timed in
alternation and their ratio is the median of paired samples (robust on a shared machine). MHA's memory is
also measured with its default ``need_weights=True``. A peer that would exceed the time or memory budget
is reported as "skipped (over budget)" (predicted from its measured growth), one that fails to allocate as
"OOM" — never silently dropped.
"""

from __future__ import annotations

import gc
import math
import statistics
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field

import torch
from torch import nn
from tqdm import tqdm

from liquid_memory.bench.memory import peak_allocated_bytes
from liquid_memory.bench.peers import (
    ProjectionFloor,
    SDPAAttention,
    causal_mha_call,
    mha_peak_estimate_bytes,
    mha_weights_peak_estimate_bytes,
    mha_with_weights_call,
)
from liquid_memory.bench.timing import paired_ratio, time_call, time_interleaved
from liquid_memory.nn.liquid_memory import LiquidMemory
from liquid_memory.nn.short_conv import DEFAULT_SHORT_CONV

OVER_BUDGET = "skipped (over budget)"
OOM = "OOM"
PEERS = ("lm", "mha", "sdpa")
DECODE_TOKENS = 32


@dataclass
class Cell:
    """One measurement: a value, or why there is none."""

    value: float | None = None
    status: str = "ok"


@dataclass
class Row:
    seq_len: int
    cells: dict[str, Cell] = field(default_factory=dict)


@dataclass
class LayerBenchConfig:
    embed_dim: int = 1024
    num_heads: int = 16
    batch_size: int = 1
    seq_lengths: Sequence[int] = (1024, 2048, 4096, 8192, 16384, 32768, 65536, 131072)
    dtype: torch.dtype = torch.float32
    device: str = "cpu"
    time_budget_s: float = 90.0
    memory_budget_bytes: int = 12 * 2**30
    backward: bool = True
    decode: bool = True
    backend: str | None = None
    decay_rank: int | None = None
    short_conv: int = DEFAULT_SHORT_CONV  # the module's default (0: the recurrence without the q/k/v convolution)


class _Budget:
    """Predicts a peer's next cost from its last measurement and its complexity (T or T²)."""

    def __init__(self, limit_s: float) -> None:
        self.limit_s = limit_s
        self.last: dict[str, tuple[int, float]] = {}
        self.dead: set[str] = set()

    def allows(self, key: str, length: int, exponent: float) -> bool:
        if key in self.dead:
            return False
        if key not in self.last:
            return True
        prev_len, prev_s = self.last[key]
        return prev_s * (length / prev_len) ** exponent <= self.limit_s

    def record(self, key: str, length: int, seconds: float) -> None:
        self.last[key] = (length, seconds)


def _is_oom(error: BaseException) -> bool:
    text = str(error).lower()
    return isinstance(error, MemoryError) or "alloc" in text or "out of memory" in text


def _measure(
    fn: Callable[[], float], budget: _Budget, key: str, length: int, exponent: float, *, timing: bool = True
) -> Cell:
    """Run one measurement unless the budget predicts it is too costly; ``timing`` values (ms) feed the budget."""
    if not budget.allows(key, length, exponent):
        return Cell(status=OVER_BUDGET)
    try:
        value = fn()
    except (RuntimeError, MemoryError) as error:
        if not _is_oom(error):
            raise
        budget.dead.add(key)
        return Cell(status=OOM)
    finally:
        gc.collect()
    if timing:
        budget.record(key, length, value / 1e3)
    return Cell(value=value)


class LayerBenchmark:
    """Builds the three layers once and measures them at every length of the configuration."""

    def __init__(self, config: LayerBenchConfig) -> None:
        self.config = config
        factory = {"device": config.device, "dtype": config.dtype}
        torch.manual_seed(0)
        e, h = config.embed_dim, config.num_heads
        self.lm = LiquidMemory(
            e, h, batch_first=True, backend=config.backend, decay_rank=config.decay_rank,
            short_conv=config.short_conv, **factory,
        )  # fmt: skip
        self.floor = ProjectionFloor(self.lm)
        self.mha = nn.MultiheadAttention(e, h, batch_first=True, **factory)
        self.sdpa = SDPAAttention(e, h, **factory)
        self.budget = _Budget(config.time_budget_s)
        self._mha_memory: tuple[int, float] | None = None

    def _mha_memory_estimate(self, length: int) -> float:
        """Bytes MHA will need at ``length``: its last measured peak grown as T² (PyTorch's MHA path decides
        what it materialises), else the worst case of per-head weights before any measurement."""
        c = self.config
        if self._mha_memory is None:
            return mha_peak_estimate_bytes(c.batch_size, c.num_heads, length, c.dtype)
        prev_len, prev_bytes = self._mha_memory
        return prev_bytes * (length / prev_len) ** 2

    def _input(self, length: int, requires_grad: bool = False) -> torch.Tensor:
        c = self.config
        x = torch.randn(c.batch_size, length, c.embed_dim, device=c.device, dtype=c.dtype)
        return x.requires_grad_(requires_grad)

    def _forward_fns(self, x: torch.Tensor) -> dict[str, Callable[[], object]]:
        return {
            "lm": lambda: self.lm(x, x, x, is_causal=True, need_weights=False)[0],
            "mha": lambda: causal_mha_call(self.mha, x),
            "sdpa": lambda: self.sdpa(x),
        }

    def _layer_vs_floor(self, row: Row, length: int, x: torch.Tensor, suffix: str, step=None) -> None:
        """Time the layer and its floor in alternation: ``lm_<suffix>``, ``floor_<suffix>``, ``lm_floor_<suffix>``."""
        c = self.config
        lm_fn = step or (lambda: self.lm(x, x, x, is_causal=True, need_weights=False)[0])
        floor_fn = self._floor_step(x) if step else (lambda: self.floor(x))
        key = f"lm_{suffix}"
        if not self.budget.allows(key, length, 1.0):
            for name in (key, f"floor_{suffix}", f"lm_floor_{suffix}"):
                row.cells[name] = Cell(status=OVER_BUDGET)
            return
        try:
            samples = time_interleaved({"lm": lm_fn, "floor": floor_fn}, budget_s=2 * c.time_budget_s)
        except (RuntimeError, MemoryError) as error:
            if not _is_oom(error):
                raise
            row.cells[key] = Cell(status=OOM)
            return
        finally:
            gc.collect()
        lm_ms, floor_ms = (statistics.median(samples[n]) * 1e3 for n in ("lm", "floor"))
        self.budget.record(key, length, lm_ms / 1e3)
        row.cells[key] = Cell(value=lm_ms)
        row.cells[f"floor_{suffix}"] = Cell(value=floor_ms)
        row.cells[f"lm_floor_{suffix}"] = Cell(value=paired_ratio(samples["lm"], samples["floor"]))

    def _floor_step(self, x: torch.Tensor) -> Callable[[], None]:
        def step() -> None:
            self.floor(x).backward()
            x.grad = None

        return step

    def run_length(self, length: int) -> Row:
        c, row = self.config, Row(length)
        exponent = {"lm": 1.0, "mha": 2.0, "sdpa": 2.0}
        x = self._input(length)
        with torch.inference_mode():
            self._layer_vs_floor(row, length, x, "fwd_ms")
            if mha_weights_peak_estimate_bytes(c.batch_size, c.num_heads, length, c.dtype) > c.memory_budget_bytes:
                row.cells["mha_w_mem_mb"] = Cell(status=OVER_BUDGET)
            else:
                row.cells["mha_w_mem_mb"] = _measure(
                    lambda x=x: peak_allocated_bytes(lambda: mha_with_weights_call(self.mha, x)) / 2**20,
                    self.budget, "mha_w_mem", length, 2.0, timing=False,
                )  # fmt: skip
            for peer, fn in self._forward_fns(x).items():
                if peer == "mha" and self._mha_memory_estimate(length) > c.memory_budget_bytes:
                    row.cells["mha_fwd_ms"] = row.cells["mha_mem_mb"] = Cell(status=OVER_BUDGET)
                    continue
                row.cells[f"{peer}_mem_mb"] = _measure(
                    lambda fn=fn: peak_allocated_bytes(fn) / 2**20,
                    self.budget, f"{peer}_fwd_ms", length, exponent[peer], timing=False,
                )  # fmt: skip
                if peer == "mha" and row.cells["mha_mem_mb"].value:
                    self._mha_memory = (length, row.cells["mha_mem_mb"].value * 2**20)
                if row.cells[f"{peer}_mem_mb"].status != "ok":
                    row.cells[f"{peer}_fwd_ms"] = row.cells[f"{peer}_mem_mb"]
                    continue
                if peer == "lm":
                    continue  # timed against its floor above
                row.cells[f"{peer}_fwd_ms"] = _measure(
                    lambda fn=fn: time_call(fn, budget_s=c.time_budget_s) * 1e3,
                    self.budget, f"{peer}_fwd_ms", length, exponent[peer],
                )  # fmt: skip
        del x
        if c.backward:
            self._run_backward(length, row, exponent)
        if c.decode:
            self._run_decode(length, row)
        return row

    def _run_backward(self, length: int, row: Row, exponent: dict[str, float]) -> None:
        c = self.config
        x = self._input(length, requires_grad=True)

        def lm_step() -> None:
            self.lm(x, x, x, is_causal=True, need_weights=False)[0].float().sum().backward()
            x.grad = None

        self._layer_vs_floor(row, length, x, "fwdbwd_ms", step=lm_step)
        self.lm.zero_grad(set_to_none=True)
        del x
        for peer in ("sdpa", "mha"):
            key = f"{peer}_fwdbwd_ms"
            if peer == "mha" and self._mha_memory_estimate(length) * 2 > c.memory_budget_bytes:
                row.cells[key] = Cell(status=OVER_BUDGET)
                continue
            x = self._input(length, requires_grad=True)
            fn = self._forward_fns(x)[peer]

            def step(fn=fn, x=x) -> None:
                fn().float().sum().backward()
                x.grad = None

            row.cells[key] = _measure(
                lambda step=step: time_call(step, budget_s=c.time_budget_s) * 1e3,
                self.budget,
                key,
                length,
                exponent[peer],
            )
            for module in (self.lm, self.mha, self.sdpa):
                module.zero_grad(set_to_none=True)

    def _run_decode(self, length: int, row: Row) -> None:
        c = self.config
        with torch.inference_mode():
            x = self._input(length)

            def lm_decode() -> float:
                self.lm.reset_state()
                self.lm.prefill(x)
                token = x[:, -1]
                return time_call(lambda: [self.lm.step(token) for _ in range(DECODE_TOKENS)]) * 1e3 / DECODE_TOKENS

            row.cells["lm_decode_ms"] = _measure(lm_decode, self.budget, "lm_decode", length, 1.0)
            self.lm.reset_state()
            heads, head_dim = c.num_heads, c.embed_dim // c.num_heads

            def sdpa_decode() -> float:
                capacity = (c.batch_size, heads, length + DECODE_TOKENS, head_dim)
                cache_k = torch.randn(capacity, device=c.device, dtype=c.dtype)
                cache_v = torch.randn(capacity, device=c.device, dtype=c.dtype)
                token = x[:, -1:]

                def tokens() -> None:  # DECODE_TOKENS steps, each written into the cache after `length` tokens
                    for i in range(DECODE_TOKENS):
                        self.sdpa.decode_step(token, cache_k, cache_v, length - 1 + i)

                return time_call(tokens) * 1e3 / DECODE_TOKENS

            row.cells["sdpa_decode_ms"] = _measure(sdpa_decode, self.budget, "sdpa_decode", length, 1.0)

    def run(self, progress: bool = True) -> list[Row]:
        rows = []
        for length in tqdm(self.config.seq_lengths, desc="layer benchmark", unit="len", disable=not progress):
            rows.append(self.run_length(length))
        return rows


def speedup(row: Row, numerator: str, denominator: str = "lm_fwd_ms") -> float | None:
    """``peer time / LiquidMemory time`` when both were measured."""
    top, bottom = row.cells.get(numerator), row.cells.get(denominator)
    if top is None or bottom is None or top.value is None or bottom.value is None or bottom.value == 0:
        return None
    return top.value / bottom.value


def rows_to_dicts(rows: list[Row]) -> list[dict]:
    return [{"seq_len": r.seq_len, **{k: asdict(v) for k, v in r.cells.items()}} for r in rows]


def finite(value: float | None) -> bool:
    return value is not None and math.isfinite(value)
