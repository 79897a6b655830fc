"""LiquidMemory with one short causal convolution per q / k / v stream (flash-linear-attention's placement).

Why: multi-query recall needs the key written at a value's position to be the *previous* token (the key). The
block-level ``short_conv`` mixes the current and previous tokens with one kernel per channel, which q, k and v
then share, so the key projection cannot see the previous token without also seeing the current one. Separate
kernels let the key stream become ``x_{t-1}`` while the value stream stays ``x_t``. Each kernel sits on its
stream's input to LiquidMemory (before its projection), so the module's own projections, decay and read-out
are unchanged; the decay follows the key stream, as it follows the key input in any LiquidMemory call.

Decode state: ``{"q_conv", "k_conv", "v_conv"}`` windows (``kernel - 1`` past inputs each) and ``"memory"``
(LiquidMemory's ``[B, H, d, d]`` state).
"""

from __future__ import annotations

from typing import Any

from torch import Tensor, nn

from liquid_memory.models.config import LiquidLMConfig
from liquid_memory.models.mixers import LiquidMixer
from liquid_memory.models.short_conv import ShortConv

STREAMS = ("q_conv", "k_conv", "v_conv")


class LiquidQKVConvMixer(LiquidMixer):
    """``LiquidMemory(conv_q(z), conv_k(z), conv_v(z))``, causal; see the module docstring."""

    def __init__(self, config: LiquidLMConfig) -> None:
        super().__init__(config)
        self.convs = nn.ModuleDict({name: ShortConv(config.d_model, config.short_conv) for name in STREAMS})

    def reset_parameters(self, std: float) -> None:
        super().reset_parameters(std)
        for conv in self.convs.values():
            conv.reset_parameters()

    def forward(self, x: Tensor, state: dict[str, Any] | None, use_cache: bool) -> tuple[Tensor, Any]:
        streams, windows = {}, {}
        for name, conv in self.convs.items():
            streams[name], windows[name] = conv(x, None if state is None else state[name])
        q_in, k_in, v_in = (streams[name] for name in STREAMS)
        memory = self.memory
        if state is None and not use_cache:
            y, _ = memory(q_in, k_in, v_in, need_weights=False, is_causal=True)
            return y, None
        # Decode / prefill with a state: the causal scan from the given state over this chunk (one token or many).
        initial = None if state is None else state["memory"]
        y, final = self._continue(initial, lambda: memory.prefill(q_in, key=k_in, value=v_in))
        return y, {**windows, "memory": final}
