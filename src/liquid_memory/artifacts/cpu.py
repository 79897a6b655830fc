"""Which artifact ISAs this CPU can run (x86-64-v3 = AVX2 baseline, x86-64-v4 = AVX-512)."""

from __future__ import annotations

import functools
import platform

ISA_FLAGS = {
    "avx2": {"avx", "avx2", "fma", "f16c", "bmi1", "bmi2", "movbe"},
    "avx512": {"avx", "avx2", "fma", "f16c", "bmi1", "bmi2", "movbe", "avx512f", "avx512bw", "avx512cd",
               "avx512dq", "avx512vl"},
}  # fmt: skip
PREFERENCE = ("avx512", "avx2")  # best first


@functools.cache
def cpu_flags() -> frozenset[str]:
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as fh:
            for line in fh:
                if line.startswith("flags"):
                    return frozenset(line.split(":", 1)[1].split())
    except OSError:
        pass
    return frozenset()


def supported_isas() -> list[str]:
    """ISAs runnable here, best first (empty off x86-64 or when the CPU flags cannot be read)."""
    if platform.machine() not in ("x86_64", "AMD64"):
        return []
    flags = cpu_flags()
    return [isa for isa in PREFERENCE if ISA_FLAGS[isa] <= flags]
