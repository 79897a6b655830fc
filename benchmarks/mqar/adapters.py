"""Initialisation adapters for the MQAR models: measured what-ifs that leave ``models/`` and ``nn/`` untouched.

A spec's ``init`` is ``"lm"`` (LiquidLM's own init) or adapters joined by ``"+"``, applied in order after the
model is built (same seed):

* ``xavier``: each LiquidMemory's q/k/v projection gets the xavier-uniform init LiquidMemory (like
  ``nn.MultiheadAttention``) uses standalone, instead of LiquidLM's N(0, 0.02).
* ``static-decay``: ``W_δ = 0`` and frozen; the decay is the per-channel bias alone (trainable), no input
  dependence. Tests whether input-dependent decay slows or destabilises recall.
* ``slow-decay[:H]``: the decay bias restarts with half-lives log-uniform from ``H`` (default 32) instead of 1 to
  4096 tokens, so every key channel remembers at least ``H`` tokens.
* ``conv-uniform``: every short-conv kernel gets PyTorch's ``Conv1d`` default init (uniform ±1/sqrt(K), the
  init flash-linear-attention's convolutions start from) instead of the near-identity start, so the previous
  tokens reach q/k/v from step one.
"""

from __future__ import annotations

import math

import torch
from torch import nn

SLOW_DECAY_MIN_HALF_LIFE = 32.0


def apply_init(model: nn.Module, init: str) -> None:
    """Apply ``init`` (see the module docstring); an unknown adapter is a ``ValueError``."""
    if init == "lm":
        return
    for item in init.split("+"):
        name, _, arg = item.partition(":")
        if name == "xavier":
            _xavier_qkv(model)
        elif name == "static-decay":
            _static_decay(model)
        elif name == "slow-decay":
            _slow_decay(model, float(arg) if arg else SLOW_DECAY_MIN_HALF_LIFE)
        elif name == "conv-uniform":
            _conv_uniform(model)
        else:
            raise ValueError(f"unknown init {item!r} (lm | xavier | static-decay | slow-decay[:H] | conv-uniform)")


def _liquid_memories(model: nn.Module) -> list[nn.Module]:
    memories = [getattr(block.mixer, "memory", None) for block in model.blocks]
    if any(m is None for m in memories):
        raise ValueError("this init adapter applies to the liquid mixer only")
    return memories


def _xavier_qkv(model: nn.Module) -> None:
    with torch.no_grad():
        for memory in _liquid_memories(model):
            for weight in (memory.in_proj_weight, memory.q_proj_weight, memory.k_proj_weight, memory.v_proj_weight):
                if weight is not None:
                    nn.init.xavier_uniform_(weight)


def _static_decay(model: nn.Module) -> None:
    with torch.no_grad():
        for memory in _liquid_memories(model):
            for name, param in memory.decay_proj.named_parameters():
                if name.endswith("weight"):
                    param.zero_()
                    param.requires_grad_(False)


def _slow_decay(model: nn.Module, min_half_life: float) -> None:
    from liquid_memory.nn.decay import init_decay_bias

    with torch.no_grad():
        for memory in _liquid_memories(model):
            memory.decay_proj.bias.copy_(init_decay_bias(memory.num_heads, memory.head_dim, min_half_life))


def _conv_uniform(model: nn.Module) -> None:
    from liquid_memory.models.short_conv import ShortConv

    convs = [m for m in model.modules() if isinstance(m, ShortConv)]
    if not convs:
        raise ValueError("init 'conv-uniform' needs a model with short_conv")
    with torch.no_grad():
        for conv in convs:
            bound = 1.0 / math.sqrt(conv.kernel_size)  # Conv1d's default for a depthwise kernel (fan_in = K)
            nn.init.uniform_(conv.weight, -bound, bound)
