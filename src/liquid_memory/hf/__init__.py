"""Hugging Face integration: ``patch_model``, the decode cache, ``linearize`` and ``from_pretrained``.

Needs the ``hf`` extra (``pip install 'liquid-memory[hf]'``: transformers, peft, safetensors, gguf). Names are
imported lazily so ``liquid_memory.hf.config`` (and the CLI) load without transformers.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "patch_model": "patch", "is_patched": "patch", "liquid_parameters": "patch", "set_mode": "patch",
    "LiquidHybridCache": "cache", "LiquidCacheLayer": "cache",
    "linearize": "linearization", "LinearizeConfig": "config",
    "from_pretrained": "io", "save_liquid": "io",
    "load_smollm2": "smollm",
    "UnsupportedArchitecture": "errors", "PatchError": "errors", "CheckpointInvalid": "errors",
    "ModelUnavailable": "errors",
}  # fmt: skip
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'liquid_memory.hf' has no attribute {name!r}")
    return getattr(importlib.import_module(f"liquid_memory.hf.{_EXPORTS[name]}"), name)
