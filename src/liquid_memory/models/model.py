"""``LiquidLM``: the seed LiquidNet's block stack with a choice of mixer, and its decode state."""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from liquid_memory.models.config import LiquidLMConfig
from liquid_memory.models.mixers import MIXER_CLASSES
from liquid_memory.models.qkv_conv import LiquidQKVConvMixer
from liquid_memory.models.short_conv import ShortConv

INIT_STD = 0.02


class RMSNorm(nn.Module):
    """``x / rms(x) · w`` with the statistics in fp32."""

    def __init__(self, width: int, eps: float = 1e-5) -> None:
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(width))

    def forward(self, x: Tensor) -> Tensor:
        xf = x.float() if x.dtype != torch.float64 else x
        normed = xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + self.eps)
        return (normed * self.weight.to(normed.dtype)).to(x.dtype)


class SwiGLU(nn.Module):
    """``down(silu(gate(x)) ⊙ up(x))``; ``down`` is the block's output projection (zero-init)."""

    def __init__(self, width: int, hidden: int) -> None:
        super().__init__()
        self.gate = nn.Linear(width, hidden, bias=False)
        self.up = nn.Linear(width, hidden, bias=False)
        self.down = nn.Linear(hidden, width, bias=False)

    def reset_parameters(self, std: float) -> None:
        nn.init.normal_(self.gate.weight, std=std)
        nn.init.normal_(self.up.weight, std=std)
        nn.init.zeros_(self.down.weight)

    def forward(self, x: Tensor) -> Tensor:
        return self.down(F.silu(self.gate(x)) * self.up(x))


@dataclass
class LayerState:
    """One block's decode state: the short-conv window (if any) and the mixer's own state."""

    conv: Tensor | None = None
    mixer: Any = None


@dataclass
class LiquidLMState:
    """Everything decode needs to continue a batch of sequences; ``position`` counts the tokens seen."""

    layers: list[LayerState] = field(default_factory=list)
    position: int = 0

    def nbytes(self) -> int:
        """Bytes held by the state's tensors (flat for recurrent mixers, growing for the KV cache)."""
        total = 0
        for layer in self.layers:
            for value in (layer.conv, layer.mixer):
                tensors = value.values() if isinstance(value, dict) else [value]
                total += sum(t.numel() * t.element_size() for t in tensors if isinstance(t, Tensor))
        return total


class Block(nn.Module):
    """RMSNorm → (short conv) → mixer → scaled residual; RMSNorm → SwiGLU → scaled residual."""

    def __init__(self, config: LiquidLMConfig) -> None:
        super().__init__()
        self.mixer_norm = RMSNorm(config.d_model, config.norm_eps)
        shared_conv = config.short_conv and not config.conv_qkv  # conv_qkv: the mixer holds one conv per stream
        self.conv = ShortConv(config.d_model, config.short_conv) if shared_conv else None
        self.mixer = LiquidQKVConvMixer(config) if config.conv_qkv else MIXER_CLASSES[config.mixer](config)
        self.mlp_norm = RMSNorm(config.d_model, config.norm_eps)
        self.mlp = SwiGLU(config.d_model, config.ffn_dim)
        self.residual_scale = 1.0 / math.sqrt(2 * config.n_layers)

    def forward(self, x: Tensor, state: LayerState | None, use_cache: bool) -> tuple[Tensor, LayerState | None]:
        z = self.mixer_norm(x)
        conv_state = None
        if self.conv is not None:
            z, conv_state = self.conv(z, None if state is None else state.conv)
        mixed, mixer_state = self.mixer(z, None if state is None else state.mixer, use_cache)
        x = x + self.residual_scale * mixed
        x = x + self.residual_scale * self.mlp(self.mlp_norm(x))
        return x, (LayerState(conv_state, mixer_state) if use_cache else None)


class LiquidLM(nn.Module):
    """A causal language model: tied embeddings, ``n_layers`` blocks, final RMSNorm.

    ``logits, state = model(input_ids)`` runs a whole sequence (training / prefill);
    ``logits, state = model(next_ids, state=state)`` continues it — one token costs O(1) in context length for
    the ``liquid`` and ``liquidnet`` mixers (the ``attention`` mixer's KV cache grows). ``state`` is ``None``
    unless asked for (``use_cache``), which by default means: not training, or a state was passed in.
    """

    def __init__(self, config: LiquidLMConfig) -> None:
        super().__init__()
        self.config = config
        self.embed = nn.Embedding(config.vocab_size, config.d_model)
        self.blocks = nn.ModuleList(Block(config) for _ in range(config.n_layers))
        self.final_norm = RMSNorm(config.d_model, config.norm_eps)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """The seed's init: N(0, 0.02) everywhere, zero-init output projections (mixer out, SwiGLU down)."""
        nn.init.normal_(self.embed.weight, std=INIT_STD)
        for block in self.blocks:
            block.mixer.reset_parameters(INIT_STD)
            block.mlp.reset_parameters(INIT_STD)
            if block.conv is not None:
                block.conv.reset_parameters()

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())

    def forward(
        self, input_ids: Tensor, state: LiquidLMState | None = None, *, use_cache: bool | None = None
    ) -> tuple[Tensor, LiquidLMState | None]:
        """``input_ids`` ``[B, T]`` (int) → logits ``[B, T, vocab]`` and the state after the last token."""
        self._check_ids(input_ids, state)
        if use_cache is None:
            use_cache = state is not None or not self.training
        x = self.embed(input_ids)
        layers = state.layers if state is not None else [None] * len(self.blocks)
        new_layers = []
        for block, layer_state in zip(self.blocks, layers, strict=True):
            x, new_state = block(x, layer_state, use_cache)
            new_layers.append(new_state)
        logits = F.linear(self.final_norm(x), self.embed.weight)
        if not use_cache:
            return logits, None
        position = (state.position if state is not None else 0) + input_ids.shape[1]
        return logits, LiquidLMState(new_layers, position)

    def _check_ids(self, input_ids: Tensor, state: LiquidLMState | None) -> None:
        if not isinstance(input_ids, Tensor) or input_ids.dim() != 2 or input_ids.dtype not in (torch.long, torch.int):
            raise ValueError("input_ids must be an integer tensor of shape [batch, length]")
        if input_ids.shape[1] == 0:
            raise ValueError("input_ids is empty: give at least one token")
        if input_ids.min() < 0 or input_ids.max() >= self.config.vocab_size:
            raise ValueError(f"token ids must lie in [0, {self.config.vocab_size}); the tokenizer does not match?")
        if state is not None and len(state.layers) != len(self.blocks):
            raise ValueError(f"state has {len(state.layers)} layers, the model {len(self.blocks)}")

    @torch.no_grad()
    def stream(
        self,
        input_ids: Tensor,
        max_new_tokens: int,
        *,
        temperature: float = 1.0,
        top_k: int | None = None,
        eos_id: int | None = None,
        state: LiquidLMState | None = None,
        generator: torch.Generator | None = None,
    ) -> Iterator[Tensor]:
        """Prefill ``input_ids`` ``[B, T]``, then yield one sampled token ``[B]`` per step (greedy at temperature 0).

        Stops after ``max_new_tokens`` or when every sequence has produced ``eos_id``.
        """
        logits, state = self(input_ids, state=state, use_cache=True)
        finished = torch.zeros(input_ids.shape[0], dtype=torch.bool, device=input_ids.device)
        for i in range(max_new_tokens):
            token = sample(logits[:, -1], temperature=temperature, top_k=top_k, generator=generator)
            yield token
            if eos_id is not None:
                finished |= token == eos_id
                if bool(finished.all()):
                    return
            if i + 1 < max_new_tokens:
                logits, state = self(token[:, None], state=state)

    @torch.no_grad()
    def generate(self, input_ids: Tensor, max_new_tokens: int, **kwargs) -> Tensor:
        """``input_ids`` followed by up to ``max_new_tokens`` sampled tokens (see :meth:`stream`)."""
        tokens = list(self.stream(input_ids, max_new_tokens, **kwargs))
        if not tokens:
            return input_ids
        return torch.cat([input_ids, torch.stack(tokens, dim=1)], dim=1)


def sample(logits: Tensor, *, temperature: float, top_k: int | None, generator: torch.Generator | None) -> Tensor:
    """One token per row of ``logits`` ``[B, V]``: argmax at temperature 0, else softmax sampling (top-k)."""
    if temperature <= 0:
        return logits.argmax(dim=-1)
    logits = logits.float() / temperature
    if top_k is not None and 0 < top_k < logits.shape[-1]:
        threshold = logits.topk(top_k, dim=-1).values[:, -1:]
        logits = logits.masked_fill(logits < threshold, float("-inf"))
    return torch.multinomial(F.softmax(logits, dim=-1), 1, generator=generator)[:, 0]
