"""``LiquidLMConfig``: every choice that shapes a LiquidLM, serialisable so a checkpoint knows its model."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

MIXERS = ("liquid", "liquidnet", "attention")

# The LiquidMemory options ``lm train`` uses unless told otherwise: a sigmoid output gate and the read-out norm's
# eps 1e-2, and L2-normalised q / k. Measured (benchmarks/results/lm/README.md, 3 paired seeds): 0.971x attention's
# held-out perplexity with all three (benchmarks/results/lm/qkn), 1.030x with the gate and eps
# (benchmarks/results/lm/seeds), 1.291x with LiquidMemory's own defaults. ``LiquidLMConfig.liquid_kwargs`` itself
# stays "exactly what is passed to LiquidMemory" (default ``{}``) — except LiquidMemory's ``short_conv``, 0 in
# LiquidLM unless named (the module's default became 4 after checkpoints were saved without it) — so every saved
# config and checkpoint keeps computing what it computed.
RECOMMENDED_LIQUID_KWARGS: dict[str, Any] = {"output_gate": True, "out_norm_eps": 1e-2, "qk_norm": True}


class ConfigError(ValueError):
    """A LiquidLM configuration that cannot build a model (the message says which field and why)."""


@dataclass
class LiquidLMConfig:
    """Width, depth and mixer of a LiquidLM (the seed LiquidNet's block, docs/architecture.md §8).

    Args:
        vocab_size: tokens in the (tied) embedding.
        d_model, n_layers, n_heads: width, depth and heads (``liquid`` and ``attention``; ``liquidnet`` has
            one vector state per channel and ignores heads).
        mixer: ``liquid`` (LiquidMemory), ``liquidnet`` (the seed's diagonal mixer) or ``attention`` (SDPA).
        ffn_dim: SwiGLU hidden size; ``None`` → 8/3·d_model rounded up to a multiple of 32.
        max_seq_len: the training context and the default prompt limit of chat / UI.
        short_conv: kernel size of a causal depthwise convolution on the mixer input (0 = off); decode keeps
            the last ``short_conv - 1`` inputs as state.
        conv_qkv: ``liquid`` mixer only: with ``short_conv``, one kernel per q / k / v stream instead of one on the
            shared mixer input (``models/qkv_conv.py``: the key stream can then carry the previous token alone).
        coupled_input, out_norm: LiquidMemory options (docs/architecture.md §2); ``liquid_kwargs`` passes any further
            LiquidMemory keyword (e.g. ``decay_rank``) through unchanged; ``{}`` = LiquidMemory's own defaults, except
            its q/k/v short convolution, off in LiquidLM unless ``liquid_kwargs`` names ``short_conv`` (LiquidLM has
            the convolutions above, and checkpoints saved before the module's default changed must load unchanged).
            ``RECOMMENDED_LIQUID_KWARGS`` is the measured best LiquidLM setting (``lm train``'s default).
        backend: ``liquid_scan`` backend for the ``liquid`` mixer (``None``: LM_BACKEND or the default).
        bias: biases in the mixer projections (the decay projection always has its bias).
        rope_base: RoPE base of the ``attention`` mixer (the recurrent mixers need no positions).
    """

    vocab_size: int
    d_model: int = 256
    n_layers: int = 4
    n_heads: int = 4
    mixer: str = "liquid"
    ffn_dim: int | None = None
    max_seq_len: int = 512
    short_conv: int = 0
    conv_qkv: bool = False
    coupled_input: bool = False
    out_norm: bool = True
    liquid_kwargs: dict[str, Any] = field(default_factory=dict)
    backend: str | None = None
    bias: bool = False
    norm_eps: float = 1e-5
    rope_base: float = 10000.0
    dropout: float = 0.0

    def __post_init__(self) -> None:
        if self.mixer not in MIXERS:
            raise ConfigError(f"mixer must be one of {', '.join(MIXERS)}, got {self.mixer!r}")
        for name in ("vocab_size", "d_model", "n_layers", "n_heads", "max_seq_len"):
            value = getattr(self, name)
            if not isinstance(value, int) or value <= 0:
                raise ConfigError(f"{name} must be a positive integer, got {value!r}")
        if self.d_model % self.n_heads:
            raise ConfigError(f"d_model ({self.d_model}) must be divisible by n_heads ({self.n_heads})")
        if self.mixer == "attention" and (self.d_model // self.n_heads) % 2:
            raise ConfigError("the attention mixer's RoPE needs an even head dimension")
        if self.ffn_dim is None:
            self.ffn_dim = -(-8 * self.d_model // 3 // 32) * 32
        if self.ffn_dim <= 0:
            raise ConfigError(f"ffn_dim must be positive, got {self.ffn_dim}")
        if self.short_conv < 0 or self.short_conv == 1:
            raise ConfigError(f"short_conv is a kernel size ≥ 2 (or 0 = off), got {self.short_conv}")
        if self.conv_qkv and (self.mixer != "liquid" or not self.short_conv):
            raise ConfigError("conv_qkv needs mixer='liquid' and a short_conv kernel size")
        if not 0.0 <= self.dropout < 1.0:
            raise ConfigError(f"dropout must be in [0, 1), got {self.dropout}")

    @property
    def head_dim(self) -> int:
        return self.d_model // self.n_heads

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> LiquidLMConfig:
        """Rebuild from :meth:`to_dict`; unknown keys are an error (a checkpoint from another version)."""
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ConfigError(f"unknown LiquidLMConfig fields {unknown}: written by another version?")
        return cls(**data)
