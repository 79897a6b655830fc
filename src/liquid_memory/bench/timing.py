"""Wall-clock timing of one call: warm-up, then the median of repeats within a time budget."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable


def time_call(fn: Callable[[], object], *, budget_s: float = 20.0, max_repeats: int = 5) -> float:
    """Median seconds per call. One warm-up call; repeats stop once ``budget_s`` is spent (≥ 1 repeat)."""
    start = time.perf_counter()
    fn()
    warmup = time.perf_counter() - start
    samples: list[float] = []
    spent = warmup
    while len(samples) < max_repeats and (not samples or spent + samples[-1] <= budget_s):
        t0 = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - t0)
        spent += samples[-1]
    return statistics.median(samples)


def time_interleaved(
    fns: dict[str, Callable[[], object]], *, budget_s: float = 20.0, max_repeats: int = 5
) -> dict[str, list[float]]:
    """Seconds per call of several functions, measured in alternation (a, b, a, b, ...) after one warm-up each.

    On a shared machine the load changes from second to second; alternating puts each pair of samples under
    nearly the same load, so ratios of paired samples stay meaningful when absolute times drift."""
    samples: dict[str, list[float]] = {name: [] for name in fns}
    start = time.perf_counter()
    for fn in fns.values():
        fn()
    while True:
        for name, fn in fns.items():
            t0 = time.perf_counter()
            fn()
            samples[name].append(time.perf_counter() - t0)
        rounds = len(next(iter(samples.values())))
        elapsed = time.perf_counter() - start
        if rounds >= max_repeats or elapsed + elapsed / (rounds + 1) > budget_s:
            return samples


def paired_ratio(top: list[float], bottom: list[float]) -> float:
    """Median of the per-round ratios ``top[i] / bottom[i]`` (see :func:`time_interleaved`)."""
    return statistics.median(a / b for a, b in zip(top, bottom, strict=True))
