"""Liquid Memory: a linear-memory drop-in for ``torch.nn.MultiheadAttention``."""

__version__ = "0.1.0"

from liquid_memory.nn import LiquidMemory, replace_attention  # noqa: E402
from liquid_memory.ops import liquid_scan, liquid_step  # noqa: E402

__all__ = ["LiquidMemory", "liquid_scan", "liquid_step", "replace_attention", "__version__"]
