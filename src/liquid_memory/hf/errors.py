"""Typed errors of the Hugging Face integration (stable codes LM7xx, see ``liquid_memory.errors``)."""

from __future__ import annotations

from liquid_memory.errors import LiquidMemoryError

SUPPORTED = ("LlamaForCausalLM", "MistralForCausalLM", "Qwen2ForCausalLM")


class UnsupportedArchitecture(LiquidMemoryError, NotImplementedError):
    """``patch_model`` was given a model whose attention it does not know how to replace."""

    code = "LM702"
    default_remedy = f"liquid_memory.hf supports {', '.join(SUPPORTED)} (SmolLM2 is a Llama)"


class PatchError(LiquidMemoryError, ValueError):
    """A patched model was called or loaded in a way it cannot honour (wrong cache, wrong mask, ...)."""

    code = "LM703"


class CheckpointInvalid(LiquidMemoryError):
    """A linearized model directory or a training checkpoint is missing, incomplete or for another model."""

    code = "LM704"
    default_remedy = "Point at a directory written by `liquid-memory linearize` (it holds liquid_config.json)"


class ModelUnavailable(LiquidMemoryError):
    """The base model cannot be loaded (package not installed, unknown name)."""

    code = "LM705"
