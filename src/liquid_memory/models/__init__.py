"""LiquidLM: the seed LiquidNet's language model with mixers ``liquid`` | ``liquidnet`` | ``attention``."""

from liquid_memory.models.config import MIXERS, ConfigError, LiquidLMConfig
from liquid_memory.models.model import LayerState, LiquidLM, LiquidLMState

__all__ = ["MIXERS", "ConfigError", "LayerState", "LiquidLM", "LiquidLMConfig", "LiquidLMState"]
