"""Peak memory a CPU call allocates, from the allocator's own events (not process RSS).

PyTorch's CPU allocator keeps no peak counter, so we record every allocation and free with the
profiler (``profile_memory=True``) and replay the raw allocation events in time order: the peak of
the running sum is the most memory the call held at once beyond what existed before it. This reads
the profiler's event tree (``experimental_event_tree``, the same data ``torch.profiler``'s memory
timeline uses), a semi-private API — torch is pinned, and a test checks the numbers.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Callable, Iterator

from torch._C._profiler import _EventType
from torch.profiler import ProfilerActivity, profile


def peak_allocated_bytes(fn: Callable[[], object]) -> int:
    """Run ``fn`` once under the profiler and return its peak extra CPU allocation in bytes.

    The result of ``fn`` is dropped inside the measured region: memory held by the output counts
    toward the peak (it was allocated) but is not mistaken for a leak.
    """
    prof = profile(activities=[ProfilerActivity.CPU], profile_memory=True)
    with _native_stderr_silenced():  # the profiler's C++ side prints a line at every start and stop
        prof.start()
    try:
        result = fn()
        del result
    finally:
        with _native_stderr_silenced():
            prof.stop()
    allocations: list[tuple[int, int]] = []
    stack = list(prof.profiler.kineto_results.experimental_event_tree())
    while stack:
        event = stack.pop()
        if event.typed[0] == _EventType.Allocation:
            allocations.append((event.start_time_ns, event.typed[1].alloc_size))
        stack.extend(event.children)
    allocations.sort(key=lambda item: item[0])
    current = peak = 0
    for _, delta in allocations:
        current += delta
        peak = max(peak, current)
    return peak


@contextlib.contextmanager
def _native_stderr_silenced() -> Iterator[None]:
    """Point file descriptor 2 at /dev/null for the block (C++ logging bypasses ``sys.stderr``)."""
    sys.stderr.flush()
    saved = os.dup(2)
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)
