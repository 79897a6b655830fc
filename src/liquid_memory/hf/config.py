"""Settings of ``linearize`` (import-light: the CLI reads them without loading transformers)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

LORA_TARGETS = ("q_proj", "k_proj", "v_proj", "o_proj")


@dataclass
class LinearizeConfig:
    """Defaults sized for SmolLM2-135M on a shared 2-core CPU (see README_INTEGRATION.md for timings)."""

    window: int = 64
    seq_len: int = 1024
    max_train_tokens: int = 65536  # stage-1 sequences: the first max_train_tokens // seq_len of the text
    steps_per_layer: int = 64
    batch_size: int = 1
    lr: float = 1e-2
    lora_steps: int = 0
    lora_rank: int = 8
    lora_alpha: float = 16.0
    lora_lr: float = 5e-4
    lora_seq_len: int = 512
    checkpoint_every: int = 10
    seed: int = 0
    base_model: str = "smollm2-135m"
    extra: dict[str, Any] = field(default_factory=dict)
