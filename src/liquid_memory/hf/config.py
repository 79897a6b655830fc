"""Settings of ``linearize`` (import-light: the CLI reads them without loading transformers)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

LORA_TARGETS = ("q_proj", "k_proj", "v_proj", "o_proj")
LORA_TARGET_SETS = {  # stage 2: the projections LoRA adapts in every decoder layer
    "attn": LORA_TARGETS,
    "attn_mlp": LORA_TARGETS + ("gate_proj", "up_proj", "down_proj"),
}
DEFAULT_SINKS = 4  # sinks with a window when none are given
LORA_OBJECTIVES = ("distill", "next_token")  # stage 2: KL to the original model's next-token distribution, or LM loss


@dataclass
class LinearizeConfig:
    """Defaults sized for SmolLM2-135M on a shared 2-core CPU (see README_INTEGRATION.md for timings)."""

    window: int = 64
    # first real tokens kept as exact softmax keys (hf/sinks.py); None = DEFAULT_SINKS with a window, 0 at
    # window 0 (pure liquid); an explicit value is honoured at window 0 too (n exact keys + the recurrence)
    sinks: int | None = None
    max_half_life: float = 4096.0  # the decay's initial half-lives span 1…max_half_life tokens
    seq_len: int = 2048
    max_train_tokens: int = 32768  # stage-1 sequences: the first max_train_tokens // seq_len of the text
    steps_per_layer: int = 256  # 96 -> 256 on 2026-11-30 (benchmarks/results/smollm2/; ~53 of a 60 CPU-min budget)
    batch_size: int = 1
    lr: float = 1e-2
    warmup_steps: int = 8  # stage 1: linear warmup, then cosine decay to 0 over steps_per_layer
    lora_steps: int = 144
    lora_rank: int = 8
    lora_alpha: float = 16.0
    lora_lr: float = 1e-3
    lora_seq_len: int = 512
    lora_objective: str = "distill"
    lora_targets: str = "attn"  # a key of LORA_TARGET_SETS
    lora_ce_weight: float = 0.0  # distill only: + this weight x cross-entropy on the original's argmax token
    lora_recall_share: float = 0.0  # share of stage-2 steps on retrieval-shaped sequences (hf/recall_data.py)
    lora_answer_weight: float = 0.0  # + this weight x the loss on the answer tokens of a retrieval-shaped sequence
    lora_global_cache: int = 0  # stage 2 runs (and the model is saved) with this many global-cache slots
    per_query_mix: bool = False  # a per-query weight of the liquid mass (LiquidParams.mix_query), trained from zero
    checkpoint_every: int = 10
    seed: int = 0
    base_model: str = "smollm2-135m"
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.sinks is None:
            self.sinks = DEFAULT_SINKS if self.window > 0 else 0
        if self.sinks < 0:
            raise ValueError(f"sinks must be >= 0, got {self.sinks}")
        if self.lora_objective not in LORA_OBJECTIVES:
            raise ValueError(f"lora_objective must be one of {', '.join(LORA_OBJECTIVES)}, got {self.lora_objective!r}")
        if not 0.0 <= self.lora_recall_share <= 1.0:
            raise ValueError(f"lora_recall_share must be in [0, 1], got {self.lora_recall_share}")
        if self.lora_answer_weight < 0 or self.lora_global_cache < 0:
            raise ValueError("lora_answer_weight and lora_global_cache must be >= 0")
        if self.lora_targets not in LORA_TARGET_SETS:
            raise ValueError(f"lora_targets must be one of {', '.join(LORA_TARGET_SETS)}, got {self.lora_targets!r}")
