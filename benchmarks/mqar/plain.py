"""The plain MQAR stack: what a drop-in user builds, with the mixer under test as the only token mixer.

Zoology's MQAR model (its ``TransformerBlock`` with the state mixer set to ``Identity``): learned token and
position embeddings, ``n_layers`` pre-norm blocks ``x + mixer(LayerNorm(x))``, a final LayerNorm and the tied
output head. No MLP, no short convolution, no RoPE: nothing but the mixer moves information between tokens, so
what it cannot do on its own shows. The mixer is ``nn.MultiheadAttention`` (the baseline) or ``LiquidMemory`` with
the given options, each with its own default initialisation, both called exactly alike:
``mixer(h, h, h, attn_mask=causal, need_weights=False, is_causal=True)`` — the call a drop-in replacement gets.

LiquidLM (``models.build_model``) differs in every one of those points (RMSNorm, SwiGLU, N(0, 0.02) init,
zero-init output projections, q/k/v short convolutions as a model option), which is why a result there does not
say what the module alone does.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from liquid_memory.nn import LiquidMemory

EMBED_STD = 0.02  # Zoology / GPT-2's embedding init


class PlainBlock(nn.Module):
    """``x + mixer(LayerNorm(x))``, causal."""

    def __init__(self, mixer: nn.Module, width: int) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(width)
        self.mixer = mixer

    def forward(self, x: Tensor, causal_mask: Tensor) -> Tensor:
        h = self.norm(x)
        y, _ = self.mixer(h, h, h, attn_mask=causal_mask, need_weights=False, is_causal=True)
        return x + y


class PlainStack(nn.Module):
    """Embeddings + learned positions → ``n_layers`` × :class:`PlainBlock` → LayerNorm → tied head.

    ``mixer`` is ``"attention"`` (``nn.MultiheadAttention``) or ``"liquid"`` (``LiquidMemory(**liquid_kwargs)``).
    """

    def __init__(
        self,
        vocab_size: int,
        max_seq_len: int,
        d_model: int,
        n_layers: int,
        n_heads: int,
        mixer: str,
        liquid_kwargs: dict[str, Any] | None = None,
        backend: str | None = None,
    ) -> None:
        super().__init__()
        if mixer not in ("attention", "liquid"):
            raise ValueError(f"the plain stack's mixer is 'attention' or 'liquid', got {mixer!r}")
        if mixer == "attention" and liquid_kwargs:
            raise ValueError("liquid_kwargs apply to the liquid mixer only")
        self.mixer_kind, self.max_seq_len = mixer, max_seq_len
        self.embed = nn.Embedding(vocab_size, d_model)
        self.position = nn.Embedding(max_seq_len, d_model)
        for table in (self.embed, self.position):
            nn.init.normal_(table.weight, std=EMBED_STD)

        def make_mixer() -> nn.Module:
            if mixer == "attention":
                return nn.MultiheadAttention(d_model, n_heads, batch_first=True)
            return LiquidMemory(d_model, n_heads, batch_first=True, backend=backend, **(liquid_kwargs or {}))

        self.blocks = nn.ModuleList(PlainBlock(make_mixer(), d_model) for _ in range(n_layers))
        self.final_norm = nn.LayerNorm(d_model)

    def hidden_states(self, input_ids: Tensor) -> Tensor:
        """The final norm's output ``[B, T, E]`` (the tied head is applied by the caller where it needs logits)."""
        length = input_ids.shape[1]
        if length > self.max_seq_len:
            raise ValueError(f"sequence of {length} tokens, the learned positions cover {self.max_seq_len}")
        positions = torch.arange(length, device=input_ids.device)
        x = self.embed(input_ids) + self.position(positions)
        causal = torch.ones(length, length, dtype=torch.bool, device=input_ids.device).triu(1)
        for block in self.blocks:
            x = block(x, causal)
        return self.final_norm(x)

    def forward(self, input_ids: Tensor) -> Tensor:
        """Logits ``[B, T, V]`` (tied head)."""
        return self.hidden_states(input_ids) @ self.embed.weight.T

    @torch.no_grad()
    def state_floats(self, seq_len: int) -> int:
        """Floats of decode state after ``seq_len`` tokens of one sequence, summed over layers: LiquidMemory's state
        measured after a ``prefill`` (``H·d²``, plus the conv window with ``short_conv``); attention's KV cache
        ``2·E·T`` per layer (``nn.MultiheadAttention`` keeps none itself: the cache a decoder would keep)."""
        total = 0
        for block in self.blocks:
            mixer = block.mixer
            if isinstance(mixer, nn.MultiheadAttention):
                total += 2 * mixer.embed_dim * seq_len
                continue
            mixer.reset_state()
            mixer.prefill(torch.zeros(1, seq_len, mixer.embed_dim))
            state = mixer.get_state()
            mixer.reset_state()
            tensors = state.values() if isinstance(state, dict) else [state]
            total += sum(t.numel() for t in tensors)
        return total
