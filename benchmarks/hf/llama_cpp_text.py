"""What llama.cpp prints, read back: its timing lines and its system-info line (pure text parsing, tested on
fixtures, so the serving benchmark's llama.cpp figures can be cross-checked without llama.cpp installed).

``llama_perf_context_print`` writes lines such as (shortened here; see the test fixture for whole ones)::

    prompt eval time =    8916.62 ms /  1024 tokens (    8.71 ms per token,   114.84 tokens per second)
           eval time =     566.51 ms /    24 runs   (   23.60 ms per token,    42.36 tokens per second)

and ``llama_print_system_info`` a line ``CPU : SSE3 = 1 | AVX = 1 | AVX2 = 1 | AVX512 = 0 | ... |``.
"""

from __future__ import annotations

import re

_TIMING = re.compile(
    r"(?P<kind>prompt eval|eval) time\s*=\s*(?P<ms>[\d.]+) ms\s*/\s*(?P<n>\d+) (?:tokens|runs)"
    r"\s*\(\s*(?P<per>[\d.]+) ms per token,\s*(?P<rate>[\d.]+|inf|nan) tokens per second\)"
)
_FEATURE = re.compile(r"([A-Z0-9_]+) = (\d+)")


def parse_perf(text: str) -> dict[str, dict[str, float | None]]:
    """``{"prompt_eval": {...}, "eval": {...}}`` from llama.cpp's timing lines (the last of each kind wins):
    ``ms`` total, ``count`` tokens or runs, ``ms_per_token``, ``tokens_per_s``. Kinds not printed are absent.
    A line with no time counted (``0.00 ms``: counters off) gives ``None`` rates, never ``inf`` (not JSON)."""
    out: dict[str, dict[str, float | None]] = {}
    for match in _TIMING.finditer(text):
        kind = "prompt_eval" if match["kind"] == "prompt eval" else "eval"
        counted = float(match["ms"]) > 0
        out[kind] = {
            "ms": float(match["ms"]),
            "count": int(match["n"]),
            "ms_per_token": float(match["per"]) if counted else None,
            "tokens_per_s": float(match["rate"]) if counted else None,
        }
    return out


def parse_system_info(text: str) -> dict[str, bool]:
    """``{"AVX2": True, "AVX512": False, ...}``: the instruction sets this llama.cpp build uses (``= 1``)."""
    return {name: value != "0" for name, value in _FEATURE.findall(text)}
