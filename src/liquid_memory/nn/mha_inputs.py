"""``nn.MultiheadAttention``'s input conventions for LiquidMemory: layouts → batch-first, masks → read-out mode.

Kept apart from the layer so the recurrence module holds only the recurrence; the checks and messages here are
the drop-in contract (README: "works where nn.MultiheadAttention works").
"""

from __future__ import annotations

from torch import Tensor

from liquid_memory.nn.masks import SUPPORTED_MASKS, is_causal_pattern, is_empty_mask


def to_batch_first(
    query: Tensor, key: Tensor, value: Tensor, widths: tuple[int, int, int], batch_first: bool
) -> tuple[Tensor, Tensor, Tensor, bool]:
    """Validate shapes against ``widths`` = (embed_dim, kdim, vdim) and return ``[N, L, ·]`` views and
    whether the input was unbatched (MHA accepts ``(L, E)``, ``(L, N, E)`` and, with ``batch_first``, ``(N, L, E)``)."""
    if query.dim() not in (2, 3):
        raise ValueError(f"query must be 2-D (unbatched) or 3-D (batched), got shape {tuple(query.shape)}")
    if key.dim() != query.dim() or value.dim() != query.dim():
        raise ValueError(
            f"query, key and value must all be batched or all unbatched; got {query.dim()}-D, "
            f"{key.dim()}-D and {value.dim()}-D"
        )
    for name, tensor, width in zip(("query", "key", "value"), (query, key, value), widths, strict=True):
        if tensor.shape[-1] != width:
            raise ValueError(f"{name} has {tensor.shape[-1]} features, expected {width}")
    unbatched = query.dim() == 2
    if unbatched:
        query, key, value = query.unsqueeze(0), key.unsqueeze(0), value.unsqueeze(0)
    elif not batch_first:
        query, key, value = query.transpose(0, 1), key.transpose(0, 1), value.transpose(0, 1)
    if key.shape[:2] != value.shape[:2] or key.shape[0] != query.shape[0]:
        raise ValueError(
            "key and value must have the same batch and length, and the same batch as query; got "
            f"query {tuple(query.shape)}, key {tuple(key.shape)}, value {tuple(value.shape)} (batch-first view)"
        )
    return query, key, value, unbatched


def attention_mode(
    attn_mask: Tensor | None, is_causal: bool, self_attention: bool, target_len: int, source_len: int
) -> str:
    """``causal``, ``bidirectional`` (self-attention without a mask) or ``cross``; any mask a recurrence cannot
    express raises ``NotImplementedError`` naming the supported ones."""
    if attn_mask is not None:
        if attn_mask.dim() not in (2, 3):
            raise ValueError(f"attn_mask must be 2-D or 3-D, got shape {tuple(attn_mask.shape)}")
        if is_causal_pattern(attn_mask, target_len, source_len):
            is_causal = True
        elif not is_empty_mask(attn_mask):
            raise NotImplementedError("this attn_mask cannot be expressed by a recurrence. " + SUPPORTED_MASKS)
    if is_causal:
        if target_len != source_len:
            raise ValueError(f"a causal call needs L == S, got L={target_len}, S={source_len}")
        return "causal"
    return "bidirectional" if self_attention else "cross"
