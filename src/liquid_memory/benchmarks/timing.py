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
