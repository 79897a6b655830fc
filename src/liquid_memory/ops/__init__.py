"""``liquid_scan`` and its backends (naive oracle, chunked PyTorch, C++; AOTInductor via artifacts)."""

from liquid_memory.ops.dispatch import liquid_scan, liquid_step

__all__ = ["liquid_scan", "liquid_step"]
