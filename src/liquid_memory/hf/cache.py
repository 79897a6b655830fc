"""The decode state of a patched model, on transformers' linear-attention cache layers.

Per layer, ``LiquidCacheLayer`` (a ``LinearAttentionAndSlidingWindowAttentionLayer``) holds:
- the last ``window - 1`` keys (after RoPE) and ``[v | log_a]`` of those tokens (the sliding-window half;
  ``log_a`` rides along because a key's decay enters the state only when it leaves the window), and
- the recurrent state ``S`` ``[B, Hkv, 2d, 2d]`` fp32 (the linear-attention half, ``recurrent_states[0]``),
- with sinks, the ``n_sink`` sink keys and values (at ``window = 0`` they are the only keys held).
A cache filled with the liquid read off (``mode="window"``) and no state to keep holds neither the state nor the
keys' decays: only the exact memories (``state_dropped``; reading the state from it later is a typed error).
Its size never depends on the context length. ``get_seq_length`` counts every token seen (generation
needs the position), ``get_mask_sizes`` describes only the keys actually held.

``LiquidHybridCache(model)`` builds one for a patched model; ``model.generate()`` and a plain forward with
``use_cache=True`` create transformers' default ``DynamicCache`` instead, and the patched attention swaps
its (still empty) layer for a ``LiquidCacheLayer`` on first use — so generate() works unchanged.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor
from transformers.cache_utils import Cache, LinearAttentionAndSlidingWindowAttentionLayer

from liquid_memory.hf.errors import PatchError


class LiquidCacheLayer(LinearAttentionAndSlidingWindowAttentionLayer):
    """Sliding window of ``window - 1`` tokens + one recurrent state; constant size.

    With a global cache (``global_cache > 0``, ``hf/global_cache.py``) the window keys leave in whole blocks:
    the layer holds the keys not yet departed by every row (at most ``window + block - 1``, or ``window +
    2 block - 2`` in a batch whose rows are padded differently; trimmed by the attention with ``retain_from``)
    and the cache's slots."""

    is_compileable = False

    def __init__(self, window: int, global_cache: int = 0) -> None:
        super().__init__(sliding_window=max(window, 1))
        self.window = window
        self.global_cache = global_cache
        self.slots: Any = None  # global_cache.Slots once the first block has left the window
        self.bounds: tuple[Tensor, Tensor] | None = None  # per row: first real key, boundary (absolute)
        self.received: Tensor | None = None  # [B, Hkv, held, 3]: attention received, queries, prompt score
        self.sinks: tuple[Tensor, Tensor, Tensor, Tensor] | None = None  # keys, values, absolute positions, ok
        self.sink_seen: Tensor | None = None  # [B] valid tokens seen (sinks are the first n of them)
        self.sinks_complete = False  # every row holds all its sinks (they never change after that)
        self.sink_last = 0  # the largest absolute position of a stored sink (decode_step.fast_decode_ready)
        self.state_dropped = False  # keys left the window without entering the state (a mode="window" call)

    def reset(self) -> None:
        """Forget the sequence (transformers' ``Cache.reset``, to reuse the cache for a new one): the window, the
        state, the sinks, the global cache and its bookkeeping — the base class alone would keep the last four."""
        super().reset()
        self.recurrent_states[0] = None
        self.is_recurrent_states_initialized[0] = False  # dropped, not zeroed: the next batch may differ in size
        self.slots = self.bounds = self.received = self.sinks = self.sink_seen = None
        self.sinks_complete, self.sink_last, self.state_dropped = False, 0, False

    def sink_valid_seen(self, batch: int, device: torch.device) -> Tensor:
        return self.sink_seen if self.sink_seen is not None else torch.zeros(batch, dtype=torch.long, device=device)

    def sink_store(self, like: tuple[Tensor, ...], base: int) -> tuple[Tensor, ...] | None:
        """The stored sinks with positions relative to ``base`` (the absolute position of the call's key 0)."""
        if self.sinks is None:
            return None
        k, v, pos, ok = self.sinks
        return k.to(like[0].dtype), v.to(like[1].dtype), pos - base, ok

    def set_sinks(self, sinks: tuple[Tensor, ...], base: int, seen: Tensor) -> None:
        k, v, pos, ok = sinks
        self.sinks, self.sink_seen = (k.detach().clone(), v.detach().clone(), pos + base, ok.clone()), seen
        self.sinks_complete = bool(ok.all()) and bool((seen >= ok.shape[1]).all())
        self.sink_last = int(self.sinks[2].max()) if self.sinks[2].numel() else 0

    def update(self, key_states: Tensor, value_states: Tensor, *args: Any, **kwargs: Any) -> tuple[Tensor, Tensor]:
        """Append the new tokens; keep (a copy of) the last ``window - 1``; return cached + new."""
        if not self.is_initialized:
            self.lazy_initialization(key_states, value_states)
        self.cumulative_length += key_states.shape[-2]
        if self.keys.numel():
            full_k = torch.cat([self.keys, key_states], dim=-2)
            full_v = torch.cat([self.values, value_states], dim=-2)
        else:
            full_k, full_v = key_states, value_states
        keep = full_k.shape[-2] if self.global_cache else max(self.window - 1, 0)
        start = full_k.shape[-2] - min(keep, full_k.shape[-2])
        self.keys, self.values = full_k[:, :, start:].clone(), full_v[:, :, start:].clone()  # drop the long tensor
        return full_k, full_v

    def retain_from(self, start: int) -> None:
        """Keep the held keys from index ``start`` on (global-cache mode: the keys before the boundary left)."""
        self.keys, self.values = self.keys[:, :, start:].clone(), self.values[:, :, start:].clone()

    def get_mask_sizes(self, query_length: int) -> tuple[int, int]:
        held = self.keys.shape[-2] if self.is_initialized and self.keys.numel() else 0
        return held + query_length, self.cumulative_length - held

    def get_seq_length(self) -> int:
        return self.cumulative_length

    def state(self) -> Tensor | None:
        return self.recurrent_states[0] if self.is_recurrent_states_initialized[0] else None

    def set_state(self, state: Tensor | None) -> None:
        """The state after a call; ``None``: the call kept none (``state_dropped``)."""
        if state is None:
            self.state_dropped = True
            return
        # replaced, not copied into: the previous state may still be saved by autograd or a compiled graph
        self.recurrent_states[0] = state.detach()
        self.is_recurrent_states_initialized[0] = True
        self.has_previous_state[0] = True

    def nbytes(self) -> int:
        """Bytes held: window keys/values plus the recurrent state."""
        total = 0
        if self.is_initialized:
            total += self.keys.numel() * self.keys.element_size() + self.values.numel() * self.values.element_size()
        state = self.state()
        if self.sinks is not None:
            total += sum(t.numel() * t.element_size() for t in self.sinks)
        if self.slots is not None:
            total += self.slots.nbytes()
        if self.received is not None:
            total += self.received.numel() * self.received.element_size()
        return total + (state.numel() * state.element_size() if state is not None else 0)


class LiquidHybridCache(Cache):
    """One ``LiquidCacheLayer`` per decoder layer of a model patched by ``patch_model``."""

    def __init__(self, model: Any) -> None:
        window, global_cache = _patched_memory(model)
        layers = _decoder_layers(model)
        super().__init__(layers=[LiquidCacheLayer(window, global_cache) for _ in layers])

    def nbytes(self) -> int:
        return sum(layer.nbytes() for layer in self.layers)


def cache_nbytes(cache: Cache) -> int:
    """Bytes a cache holds (liquid layers or transformers' KV layers)."""
    total = 0
    for layer in cache.layers:
        if isinstance(layer, LiquidCacheLayer):
            total += layer.nbytes()
        elif getattr(layer, "is_initialized", False):
            total += sum(t.numel() * t.element_size() for t in (layer.keys, layer.values) if t is not None)
    return total


def liquid_layer(cache: Any, layer_idx: int, window: int, global_cache: int = 0) -> LiquidCacheLayer:
    """The ``LiquidCacheLayer`` for ``layer_idx``, installing one into an empty default cache slot."""
    if not isinstance(cache, Cache):
        raise PatchError(f"past_key_values must be a transformers Cache, got {type(cache).__name__}")
    while len(cache.layers) <= layer_idx:
        cache.layers.append(LiquidCacheLayer(window, global_cache))
    layer = cache.layers[layer_idx]
    if isinstance(layer, LiquidCacheLayer):
        if (layer.window, layer.global_cache) != (window, global_cache):
            raise PatchError(
                f"cache layer {layer_idx} was built for window {layer.window}, global cache {layer.global_cache}; "
                f"the model uses window {window}, global cache {global_cache}"
            )
        return layer
    if getattr(layer, "is_initialized", False):
        raise PatchError(
            f"cache layer {layer_idx} already holds softmax keys/values; a patched model needs an empty cache "
            "or liquid_memory.hf.LiquidHybridCache(model)"
        )
    cache.layers[layer_idx] = LiquidCacheLayer(window, global_cache)
    return cache.layers[layer_idx]


def _decoder_layers(model: Any) -> Any:
    inner = getattr(model, "model", model)
    layers = getattr(inner, "layers", None)
    if layers is None:
        raise PatchError(f"{type(model).__name__} has no decoder layers at .model.layers")
    return layers


def _patched_memory(model: Any) -> tuple[int, int]:
    """``(window, global_cache)`` shared by every patched layer."""
    found = {
        (getattr(layer.self_attn, "window", None), getattr(layer.self_attn, "global_cache", 0))
        for layer in _decoder_layers(model)
    }
    if len(found) != 1 or None in next(iter(found)):
        raise PatchError("LiquidHybridCache needs a model patched by liquid_memory.hf.patch_model")
    return found.pop()
