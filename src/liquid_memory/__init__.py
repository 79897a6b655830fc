"""Liquid Memory: a linear-memory drop-in for ``torch.nn.MultiheadAttention``."""

from liquid_memory.bench.run import run_benchmark
from liquid_memory.nn import LiquidMemory, replace_attention
from liquid_memory.ops import liquid_scan, liquid_step
from liquid_memory.version import __version__

# ``LiquidMemory.benchmark(...)``: the layer benchmark, attached here so that the layer never imports its benchmark
LiquidMemory.benchmark = staticmethod(run_benchmark)

__all__ = ["LiquidMemory", "liquid_scan", "liquid_step", "replace_attention", "__version__"]
