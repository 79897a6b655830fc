"""A causal depthwise short convolution over the time axis, with the ``kernel_size - 1`` past inputs as state.

flash-linear-attention's GLA / DeltaNet layers put one such convolution on each of q, k and v right after their
projections (``ShortConvolution``: kernel 4, SiLU, no bias, ``nn.Conv1d``'s default init). A key can then carry
its neighbour token, which associative recall needs and a decaying sum cannot build on its own (the current token
always has the largest weight). ``LiquidMemory(short_conv=K)`` uses this module on its projected q, k and v;
``models.short_conv.ShortConv`` (LiquidLM's convolution on the mixer input) is the same op with another init.

The op is written as ``K`` shifted multiply-adds in ``[B, T, C]`` layout rather than ``F.conv1d``: the result keeps
the token-major memory the ``liquid_scan`` kernels read in place, it is exact in float64, and ``torch.compile``
sees plain elementwise ops.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

ACTIVATIONS = ("silu", None)
# LiquidMemory's default kernel: with it the module alone learns multi-query recall within attention's steps (MQAR,
# plain stack, 3 seeds; without it not at all in 3.3x attention's steps): benchmarks/results/mqar/README.md.
DEFAULT_SHORT_CONV = 4


class CausalShortConv(nn.Module):
    """``y_t = act(Σ_{j<K} w[:, K-1-j] ⊙ x_{t-j})`` per channel, no bias; ``x_{t<0}`` come from the window (zeros).

    Parameter ``weight`` ``[channels, 1, kernel_size]`` (``nn.Conv1d``'s depthwise shape; the last tap multiplies
    the current input), initialised uniform ±1/sqrt(K) as ``nn.Conv1d`` and flash-linear-attention do.
    """

    def __init__(self, channels: int, kernel_size: int, activation: str | None = None, device=None, dtype=None) -> None:
        super().__init__()
        if not isinstance(kernel_size, int) or isinstance(kernel_size, bool) or kernel_size < 2:
            raise ValueError(f"a short convolution's kernel size must be an int >= 2, got {kernel_size!r}")
        if activation not in ACTIVATIONS:
            raise ValueError(f"activation must be one of {ACTIVATIONS}, got {activation!r}")
        self.channels, self.kernel_size, self.activation = channels, kernel_size, activation
        self.weight = nn.Parameter(torch.empty(channels, 1, kernel_size, device=device, dtype=dtype))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        bound = 1.0 / math.sqrt(self.kernel_size)  # Conv1d's kaiming-uniform(a=√5) bound for fan_in = K
        nn.init.uniform_(self.weight, -bound, bound)

    def forward(self, x: Tensor, window: Tensor | None = None, channels: slice | None = None) -> tuple[Tensor, Tensor]:
        """``x`` ``[B, T, C]``, ``window`` ``[B, K-1, C]`` (the previous inputs, oldest first; ``None`` = zeros) →
        ``(y [B, T, C], the new window)``. The window is detached: decode state, not part of a training graph.
        ``channels``: convolve with those rows of ``weight`` only (``x`` then has that many channels)."""
        y, window = causal_conv(x, self.weight if channels is None else self.weight[channels], window)
        if self.activation == "silu":  # in place when nothing needs its input for a backward: one buffer less
            y = F.silu(y, inplace=not (torch.is_grad_enabled() and y.requires_grad))
        return y, window

    def convolve_qkv(
        self,
        q: Tensor,
        k: Tensor,
        v: Tensor,
        padded: Tensor | None,
        window: Tensor | None,
        pad_queries: bool,
        packed: Tensor | None = None,
    ) -> tuple[Tensor, Tensor, Tensor, Tensor | None]:
        """LiquidMemory's use: ``q`` ``[B, L, E]``, ``k``, ``v`` ``[B, S, E]`` (weight rows ``[q | k | v]``) → the
        convolved ``q, k, v`` and the new ``[B, K-1, 3E]`` window. Rows of padded positions (``padded`` ``[B, S]``)
        enter as zeros, so they reach no later token; the query rows too when ``pad_queries`` (self-attention: one
        sequence). With ``L != S`` (cross-attention) the query and the key/value streams are convolved apart, each
        from zeros (no window: cross-attention has no decode state). ``packed``: ``[q | k | v]`` already in one
        ``[B, T, 3E]`` buffer (MHA's packed projection), used instead of a concatenated copy."""
        width = q.shape[-1]
        if q.shape[1] == k.shape[1]:
            x = torch.cat([q, k, v], dim=-1) if packed is None else packed
            if padded is not None:
                drop = padded[..., None].expand(-1, -1, 3 * width)
                if not pad_queries:
                    drop = drop & (torch.arange(3 * width, device=x.device) >= width)
                x = x.masked_fill(drop, 0.0)
            y, window = self(x, window)
            q, k, v = y.chunk(3, dim=-1)
            return q, k, v, window
        if window is not None:
            raise ValueError("a conv window continues a causal sequence; cross-attention has none")
        kv = torch.cat([k, v], dim=-1)
        kv = kv if padded is None else kv.masked_fill(padded[..., None], 0.0)
        kv, _ = self(kv, channels=slice(width, 3 * width))
        k, v = kv.chunk(2, dim=-1)
        return self(q, channels=slice(0, width))[0], k, v, None

    def extra_repr(self) -> str:
        return f"channels={self.channels}, kernel_size={self.kernel_size}, activation={self.activation}"


def causal_conv(x: Tensor, weight: Tensor, window: Tensor | None) -> tuple[Tensor, Tensor]:
    """The linear part ``Σ_j w_j ⊙ x_{t-j}`` in ``x``'s dtype (``weight`` ``[C, 1, K]``) and the new window (the last
    ``K - 1`` rows of ``cat(window, x)``, detached). One ``[B, T, C]`` buffer and ``K`` passes over it: no padded copy
    of the input (the window, when there is one, only changes the first ``K - 1`` rows)."""
    batch, length, channels = x.shape
    kernel = weight.shape[-1]
    if window is not None and window.shape != (batch, kernel - 1, channels):
        raise ValueError(f"conv window must be {(batch, kernel - 1, channels)}, got {tuple(window.shape)}")
    taps = weight.to(x.dtype)[:, 0]  # [C, K]; tap K-1 multiplies the current input
    y = x * taps[:, kernel - 1]
    for lag in range(1, min(kernel, length)):  # in place (autograd keeps the inputs, not y)
        y[:, lag:].addcmul_(x[:, : length - lag], taps[:, kernel - 1 - lag])
    if window is not None and length:  # the first rows also see the window: recomputed from a small buffer
        head = min(length, kernel - 1)
        context = torch.cat([window.to(x.dtype), x[:, :head]], dim=1)  # [B, K-1+head, C]
        first = context[:, :head] * taps[:, 0]
        for j in range(1, kernel):
            first = first + context[:, j : j + head] * taps[:, j]
        y[:, :head] = first
    if length >= kernel - 1:
        new_window = x[:, length - (kernel - 1) :]
    else:
        previous = x.new_zeros(batch, kernel - 1, channels) if window is None else window.to(x.dtype)
        new_window = torch.cat([previous[:, length:], x], dim=1)
    return y, new_window.detach()
