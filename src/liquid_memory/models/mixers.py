"""The three token mixers of a LiquidLM; each maps ``[B, T, E]`` and a decode state to ``[B, T, E]`` and a state.

Contract (what the model relies on): ``forward(x, state, use_cache)`` with ``state=None`` starts a sequence;
with ``use_cache`` the returned state continues it, so running a sequence in pieces (the last piece one token
long, the decode step) gives the same outputs as one parallel call. ``reset_parameters(std)`` applies the
seed's init: N(0, std) weights, zero-init output projection.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from liquid_memory.models.config import LiquidLMConfig
from liquid_memory.models.diag_scan import chunked_diag_scan
from liquid_memory.nn import LiquidMemory


class LiquidMixer(nn.Module):
    """LiquidMemory (docs/architecture.md §2), causal; decodes through its ``set_state`` / ``prefill`` / ``step``."""

    def __init__(self, config: LiquidLMConfig) -> None:
        super().__init__()
        self.memory = LiquidMemory(
            config.d_model, config.n_heads, dropout=config.dropout, bias=config.bias, batch_first=True,
            coupled_input=config.coupled_input, out_norm=config.out_norm, backend=config.backend,
            **{"short_conv": 0, **config.liquid_kwargs},  # LiquidLM: off unless named (its own convs; checkpoints)
        )  # fmt: skip

    def reset_parameters(self, std: float) -> None:
        m = self.memory
        with torch.no_grad():
            for weight in (m.in_proj_weight, m.q_proj_weight, m.k_proj_weight, m.v_proj_weight):
                if weight is not None:
                    nn.init.normal_(weight, std=std)
            if m.in_proj_bias is not None:
                nn.init.zeros_(m.in_proj_bias)
                nn.init.zeros_(m.out_proj.bias)
            nn.init.zeros_(m.out_proj.weight)
            if m.gate_proj is not None:  # output_gate (liquid_kwargs): N(0, std) like the other projections
                nn.init.normal_(m.gate_proj.weight, std=std)
            # decay_proj keeps LiquidMemory's own init: N(0, 0.02) weight, multi-timescale bias.

    def forward(self, x: Tensor, state: Tensor | None, use_cache: bool) -> tuple[Tensor, Tensor | None]:
        if state is None and not use_cache:
            y, _ = self.memory(x, x, x, need_weights=False, is_causal=True)
            return y, None
        memory = self.memory
        if x.shape[1] == 1:  # the decode step, O(1) in the context
            return self._continue(state, lambda: memory.step(x[:, 0]).unsqueeze(1))
        return self._continue(state, lambda: memory.prefill(x))

    def _continue(self, state: Tensor | None, call: Callable[[], Tensor]) -> tuple[Tensor, Tensor | None]:
        """``call()`` (a ``prefill`` / ``step`` of the memory) from ``state`` → (its output, the new state).

        The memory copies ``state`` (the caller's object is never changed) and holds no sequence afterwards."""
        memory = self.memory
        memory.set_state(state)
        try:
            return call(), memory.get_state()
        finally:
            memory.reset_state()


class LiquidNetMixer(nn.Module):
    """The seed LiquidNet's diagonal mixer: one vector state per sequence, coupled ``(1 - α)`` input.

    ``α_t = σ(W_α z_t + b_α)``, ``h_t = α_t ⊙ h_{t-1} + (1 - α_t) ⊙ tanh(W_v z_t)``, ``y_t = W_o(σ(W_g z_t) ⊙ h_t)``.
    ``b_α`` starts the channels at half-lives log-uniform from 1 to 4096 tokens, like LiquidMemory's decay.
    """

    def __init__(self, config: LiquidLMConfig) -> None:
        super().__init__()
        width = config.d_model
        self.alpha_proj = nn.Linear(width, width)
        self.value_proj = nn.Linear(width, width, bias=config.bias)
        self.gate_proj = nn.Linear(width, width, bias=config.bias)
        self.out_proj = nn.Linear(width, width, bias=config.bias)
        self.dropout = config.dropout

    def reset_parameters(self, std: float) -> None:
        with torch.no_grad():
            for linear in (self.alpha_proj, self.value_proj, self.gate_proj):
                nn.init.normal_(linear.weight, std=std)
                if linear.bias is not None:
                    nn.init.zeros_(linear.bias)
            half_life = torch.logspace(0, math.log10(4096), self.alpha_proj.out_features, dtype=torch.float64)
            alpha = torch.exp(-math.log(2) / half_life)
            self.alpha_proj.bias.copy_(torch.log(alpha) - torch.log1p(-alpha))  # logit(α)
            nn.init.zeros_(self.out_proj.weight)
            if self.out_proj.bias is not None:
                nn.init.zeros_(self.out_proj.bias)

    def forward(self, x: Tensor, state: Tensor | None, use_cache: bool) -> tuple[Tensor, Tensor | None]:
        u = _at_least_fp32(self.alpha_proj(x))
        log_alpha = F.logsigmoid(u)
        drive = torch.sigmoid(-u) * torch.tanh(_at_least_fp32(self.value_proj(x)))  # (1 - α) ⊙ tanh(W_v z)
        if x.shape[1] == 1 and state is not None:  # decode: one step of the recurrence, O(1)
            h = torch.exp(log_alpha) * state.to(drive.dtype)[:, None] + drive
            last = h[:, 0]
        else:
            h, last = chunked_diag_scan(log_alpha, drive, state)
        gated = torch.sigmoid(self.gate_proj(x)) * h.to(x.dtype)
        y = self.out_proj(F.dropout(gated, p=self.dropout, training=self.training))
        return y, (last if use_cache or state is not None else None)


class AttentionMixer(nn.Module):
    """Causal softmax attention through ``F.scaled_dot_product_attention`` with RoPE and a KV cache."""

    def __init__(self, config: LiquidLMConfig) -> None:
        super().__init__()
        self.n_heads, self.head_dim = config.n_heads, config.head_dim
        self.qkv_proj = nn.Linear(config.d_model, 3 * config.d_model, bias=config.bias)
        self.out_proj = nn.Linear(config.d_model, config.d_model, bias=config.bias)
        inv_freq = config.rope_base ** (-torch.arange(0, self.head_dim, 2, dtype=torch.float64) / self.head_dim)
        self.register_buffer("inv_freq", inv_freq.float(), persistent=False)
        self.dropout = config.dropout

    def reset_parameters(self, std: float) -> None:
        with torch.no_grad():
            nn.init.normal_(self.qkv_proj.weight, std=std)
            nn.init.zeros_(self.out_proj.weight)
            for linear in (self.qkv_proj, self.out_proj):
                if linear.bias is not None:
                    nn.init.zeros_(linear.bias)

    def rope(self, x: Tensor, offset: int) -> Tensor:
        """Rotate ``x`` ``[B, H, T, d]`` (halves as the pairs) for absolute positions ``offset …``."""
        positions = torch.arange(offset, offset + x.shape[2], device=x.device, dtype=torch.float32)
        angles = torch.outer(positions, self.inv_freq.to(x.device))
        cos, sin = angles.cos().to(x.dtype), angles.sin().to(x.dtype)
        first, second = x.chunk(2, dim=-1)
        return torch.cat([first * cos - second * sin, first * sin + second * cos], dim=-1)

    def forward(self, x: Tensor, state: dict[str, Any] | None, use_cache: bool) -> tuple[Tensor, Any]:
        batch, length, width = x.shape
        q, k, v = (
            t.view(batch, length, self.n_heads, self.head_dim).transpose(1, 2) for t in self.qkv_proj(x).chunk(3, -1)
        )
        past = 0 if state is None else state["k"].shape[2]
        q, k = self.rope(q, past), self.rope(k, past)
        if state is not None:
            k = torch.cat([state["k"].to(k.dtype), k], dim=2)
            v = torch.cat([state["v"].to(v.dtype), v], dim=2)
        dropout = self.dropout if self.training else 0.0
        if past == 0:
            o = F.scaled_dot_product_attention(q, k, v, is_causal=True, dropout_p=dropout)
        elif length == 1:
            o = F.scaled_dot_product_attention(q, k, v, dropout_p=dropout)
        else:  # a chunk after a cache: query i sees keys 0 … past + i
            visible = torch.ones(length, past + length, dtype=torch.bool, device=x.device).tril(diagonal=past)
            o = F.scaled_dot_product_attention(q, k, v, attn_mask=visible, dropout_p=dropout)
        y = self.out_proj(o.transpose(1, 2).reshape(batch, length, width))
        new_state = {"k": k.detach(), "v": v.detach()} if use_cache or state is not None else None
        return y, new_state


def _at_least_fp32(t: Tensor) -> Tensor:
    """The recurrence runs in fp32 under bf16 autocast (and stays float64 in float64 checks)."""
    return t if t.dtype in (torch.float32, torch.float64) else t.float()


MIXER_CLASSES: dict[str, type[nn.Module]] = {
    "liquid": LiquidMixer,
    "liquidnet": LiquidNetMixer,
    "attention": AttentionMixer,
}
