"""LiquidLM: the seed LiquidNet's language model with mixers ``liquid`` | ``liquidnet`` | ``attention``."""

from liquid_memory.models.config import MIXERS, RECOMMENDED_LIQUID_KWARGS, ConfigError, LiquidLMConfig
from liquid_memory.models.model import LayerState, LiquidLM, LiquidLMState

__all__ = [
    "MIXERS",
    "RECOMMENDED_LIQUID_KWARGS",
    "ConfigError",
    "LayerState",
    "LiquidLM",
    "LiquidLMConfig",
    "LiquidLMState",
]
