"""Reading MultiheadAttention-style masks into what a recurrence can honour.

A recurrence can honour exactly two things: a causal pattern (``attn_mask``) and padded keys
(``key_padding_mask``). Everything else is refused with ``NotImplementedError`` rather than
silently approximated.
"""

from __future__ import annotations

import torch
from torch import Tensor

SUPPORTED_MASKS = (
    "LiquidMemory supports attn_mask=None, is_causal=True, or an attn_mask that is exactly the causal "
    "pattern (bool True above the diagonal, or float -inf above and 0 on/below it, as "
    "nn.Transformer.generate_square_subsequent_mask makes); plus key_padding_mask"
)


def _is_masked_float(mask: Tensor) -> Tensor:
    return torch.isneginf(mask) | (mask <= torch.finfo(mask.dtype).min)


def is_causal_pattern(attn_mask: Tensor, target_len: int, source_len: int) -> bool:
    """True when ``attn_mask`` ([L, S] or [N·H, L, S]) masks exactly the positions above the diagonal."""
    if attn_mask.shape[-2:] != (target_len, source_len) or target_len != source_len:
        return False
    above = torch.ones(target_len, source_len, dtype=torch.bool, device=attn_mask.device).triu(1)
    if attn_mask.dtype == torch.bool:
        return bool((attn_mask == above).all())
    if not attn_mask.is_floating_point():
        return False
    masked = _is_masked_float(attn_mask)
    return bool((masked == above).all() and (attn_mask.masked_fill(above, 0) == 0).all())


def is_empty_mask(attn_mask: Tensor) -> bool:
    """True when the mask masks nothing (all False, or all 0.0): equivalent to no mask."""
    if attn_mask.dtype == torch.bool:
        return not bool(attn_mask.any())
    return attn_mask.is_floating_point() and not bool(attn_mask.any())


def padding_to_bool(key_padding_mask: Tensor, batch: int, source_len: int) -> Tensor:
    """``[N, S]`` bool (True = padded) from a bool mask or a float mask of 0 / -inf."""
    if key_padding_mask.shape != (batch, source_len):
        raise ValueError(
            f"key_padding_mask must have shape (N, S) = {(batch, source_len)}, got {tuple(key_padding_mask.shape)}"
        )
    if key_padding_mask.dtype == torch.bool:
        return key_padding_mask
    if not key_padding_mask.is_floating_point():
        raise TypeError(f"key_padding_mask must be bool or float, got {key_padding_mask.dtype}")
    padded = _is_masked_float(key_padding_mask)
    if bool((key_padding_mask.masked_fill(padded, 0) != 0).any()):
        raise NotImplementedError(
            "a float key_padding_mask may hold only 0 (keep) and -inf (pad): a recurrence cannot add "
            "arbitrary score biases. Pass a bool mask (True = padded) instead."
        )
    return padded
