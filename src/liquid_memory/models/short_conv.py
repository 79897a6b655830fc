"""A short causal depthwise convolution on the mixer input (the "shift" that helps linear layers recall).

flash-linear-attention's layers put such a convolution on q/k/v and Zoology's BaseConv shows why: a token's
key can then carry its neighbour, which associative recall needs. LiquidMemory projects q/k/v itself, so the
convolution sits on the mixer's input instead. Decode keeps the last ``kernel_size - 1`` inputs as state. The op
itself is ``nn.short_conv.causal_conv`` (also behind ``LiquidMemory(short_conv=K)``); only the init differs here.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from liquid_memory.nn.short_conv import causal_conv

DEFAULT_KERNEL = 4  # flash-linear-attention's default short-convolution size (the benchmarks' conv variants)


class ShortConv(nn.Module):
    """``y_t = Σ_{j<K} w_j ⊙ x_{t-j}`` per channel (no bias); ``x_{t<0}`` come from the conv state (zeros)."""

    def __init__(self, channels: int, kernel_size: int) -> None:
        super().__init__()
        self.channels, self.kernel_size = channels, kernel_size
        self.weight = nn.Parameter(torch.empty(channels, 1, kernel_size))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Near-identity start (current tap 1, earlier taps small) so the mixer first sees its plain input."""
        with torch.no_grad():
            nn.init.normal_(self.weight, std=0.02)
            self.weight[:, 0, -1] += 1.0

    def forward(self, x: Tensor, state: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """``x`` ``[B, T, C]``, ``state`` ``[B, K-1, C]`` (previous inputs, oldest first) → ``(y, new_state)``."""
        return causal_conv(x, self.weight, state)
