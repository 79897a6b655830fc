"""The ``LiquidMemory`` module and helpers to swap it into existing models."""

from liquid_memory.nn.liquid_memory import LiquidMemory
from liquid_memory.nn.swap import replace_attention

__all__ = ["LiquidMemory", "replace_attention"]
