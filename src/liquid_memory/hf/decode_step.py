"""The hybrid's one-token decode step once the window is full: ``hybrid.py``'s math for one query, few ops.

The general path (``window_part`` + ``liquid_part`` + ``combine``) serves any call — prefill, chunks, a window
still filling, sinks not yet complete. A decode step after that is always the same small problem, and at
SmolLM2's size its cost was the number of tensor ops, not their arithmetic (≈ 400 ops per layer and token
where the original attention needs ≈ 25). Here, for the new query at position ``W - 1`` of the call's keys
(the ``W - 1`` held keys, then the new one):

- exact keys: the stored sinks (all older than the window: the fast path's condition) and the ``W`` window keys;
- the liquid part reads the incoming state ``S`` (``Σ_old w [v, 1] = Sᵀ φ_q(q)``: every key older than the
  window is in it), then key 0, which leaves the window with this step, enters ``S`` (``liquid_step``);
- one shared normaliser: the liquid mass ``e^β D`` is one more "key" of the softmax, with value ``N / D``:
  ``y = softmax([s_1 … s_n, β + ln D]) · [v_1 … v_n, N / D]`` equals ``combine``'s
  ``(Σ e^s v + e^β N) / (Σ e^s + e^β D)``, evaluated stably by one softmax.

``decode_core`` is a function of plain tensors (no modules, no cache object); the ``G`` query heads of a KV
group read their KV head's keys, values and state in one batched matmul (no loop over heads or groups). The
tests compare it with the general path (float64) and with full recomputation. (``torch.compile`` of this
function was measured slower than eager on SmolLM2 — 134 vs 124 ms/token CPU time, 1 thread, after 5.6 min
of compiling on a busy machine — so it stays eager.)

``decode_core`` is also the reference of the compiled step (``ops/dispatch.py``'s ``hybrid_decode_kernel``, the
C++ op ``hybrid_decode_`` in ``csrc/hybrid_decode.cpp``): with the ``cpp`` backend, fp32 tensors and no autograd,
``decode_step`` runs the whole step — decay, feature maps, scores, state read, state update, window shift — as
one op per layer (≈ 70 tensor ops and their Python calls before), updating the cache's window and state in place.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from liquid_memory.hf.hybrid import TINY
from liquid_memory.hf.params import feature_map, low_rank_log_decay
from liquid_memory.nn.decay import DELTA_MIN
from liquid_memory.ops.dispatch import hybrid_decode_kernel, liquid_step


def fast_decode_ready(attn: Any, layer: Any, t: int) -> bool:
    """Whether ``decode_step`` applies to ``attn`` (a ``LiquidHybridAttention``) and its cache ``layer``: the
    two-memory hybrid (``mode == "hybrid"``, no global cache: that has its own forward, ``three_memories.py``),
    one new token, a full window held, the state set and every sink stored and older than the held keys
    (otherwise the general path runs: it also completes the sinks)."""
    if attn.mode != "hybrid" or attn.global_cache > 0:
        return False
    window, sinks = attn.window, attn.sinks
    if t != 1 or window < 2 or not layer.is_initialized or layer.keys.shape[-2] != window - 1:
        return False
    if layer.state() is None:
        return False
    if sinks == 0:
        return True
    return layer.sinks is not None and layer.sinks_complete and layer.sink_last < layer.cumulative_length - window + 1


def _as(x: Tensor, dtype: torch.dtype) -> Tensor:
    return x if x.dtype == dtype else x.to(dtype)  # a no-op .to() still costs a dispatch: this path counts ops


def decode_core(
    q: Tensor, k: Tensor, v: Tensor, hidden: Tensor, held_keys: Tensor, held_packed: Tensor,
    sink_keys: Tensor | None, sink_values: Tensor | None, state: Tensor, valid: Tensor | None,
    feature_q: Tensor, feature_k: Tensor, down: Tensor, up: Tensor, bias: Tensor, beta: Tensor,
    scaling: float, backend: str | None,
) -> tuple[Tensor, Tensor, Tensor, Tensor]:  # fmt: skip
    """``(y [B, 1, H·d] in hidden's dtype, held keys, held [v | log a], new state)`` for one new token.

    ``q`` ``[B, H, 1, d]``, ``k``, ``v`` ``[B, Hkv, 1, d]`` after RoPE; ``held_*`` the cache's ``W - 1`` keys and
    ``[v | log a]``; ``valid`` ``[B, W]`` (``None``: no padding); ``beta`` ``[H]`` or ``[B, H, 1]``."""
    b, h, _, d = q.shape
    hkv = k.shape[1]
    g = h // hkv
    acc = state.dtype
    log_a = low_rank_log_decay(hidden, down, up, bias, hkv)  # [B, Hkv, 1, 2d]
    keys = torch.cat([held_keys, k], dim=2)  # the W keys of this call, in the model dtype
    packed = torch.cat([held_packed, torch.cat([v, _as(log_a, v.dtype)], dim=-1)], dim=2)
    exact_k, exact_v = _as(keys, acc), _as(packed[..., :d], acc)
    if sink_keys is not None:
        exact_k, exact_v = torch.cat([_as(sink_keys, acc), exact_k], 2), torch.cat([_as(sink_values, acc), exact_v], 2)
    qg = _as(q, acc).reshape(b, hkv, g, d)
    scores = torch.matmul(qg * scaling, exact_k.transpose(-1, -2))  # [B, Hkv, G, n_sink + W]
    if valid is not None:  # padded window keys (sinks are real tokens by construction)
        allowed = torch.cat([valid.new_ones((b, scores.shape[-1] - valid.shape[1])), valid], 1)
        scores = scores.masked_fill(~allowed[:, None, None, :], float("-inf"))
    # the liquid part reads the state before key 0 enters it
    phi_q = feature_map(qg.reshape(b, h, 1, d), feature_q).view(b, hkv, g, 2 * d)
    read = torch.matmul(phi_q, state)  # [B, Hkv, G, 2d]: N = read[..., :d], D = read[..., d]
    den = read[..., d : d + 1].clamp_min(TINY)
    log_w = _as(beta.view(1, hkv, g, 1) if beta.dim() == 1 else beta.reshape(b, hkv, g, 1), acc) + den.log()
    weights = torch.softmax(torch.cat([scores, log_w], dim=-1), dim=-1)
    y = torch.matmul(weights[..., :-1], exact_v).addcmul_(weights[..., -1:], read[..., :d] / den)
    new_state = _enter_state(exact_k[:, :, -keys.shape[2]], _as(packed[:, :, 0], acc), valid, state, feature_k, d,
                             backend)  # fmt: skip
    y = _as(y.reshape(b, 1, h * d), hidden.dtype)
    return y, keys[:, :, 1:].contiguous(), packed[:, :, 1:].contiguous(), new_state


def _enter_state(key0, packed0, valid, state, feature_k, d: int, backend) -> Tensor:
    """Key 0 (the oldest held key, leaving the window) enters the state: ``S ← diag(a) S + φ_k(k) [v, 1, 0…]ᵀ``."""
    phi_k = feature_map(key0[:, :, None], feature_k)[:, :, 0]  # [B, Hkv, 2d]
    value = torch.nn.functional.pad(packed0[..., : d + 1], (0, d - 1)).index_fill_(-1, _column(d, packed0), 1.0)
    log_a = packed0[..., d:]
    if valid is not None:  # a padded key contributes nothing and does not decay the state
        keep = valid[:, 0, None, None].to(state.dtype)
        phi_k, value, log_a = phi_k * keep, value * keep, log_a * keep
    _, new_state = liquid_step(torch.zeros_like(phi_k), phi_k, value, log_a, state, backend=backend)
    return new_state


_COLUMNS: dict[tuple[int, torch.device], Tensor] = {}


def _column(d: int, like: Tensor) -> Tensor:
    """The index ``[d]`` (the value's appended 1), made once per width and device."""
    key = (d, like.device)
    if key not in _COLUMNS:
        _COLUMNS[key] = torch.tensor([d], device=like.device)
    return _COLUMNS[key]


def decode_step(attn: Any, q: Tensor, k: Tensor, v: Tensor, hidden: Tensor, layer: Any, valid: Tensor | None) -> Tensor:
    """Run the step for ``attn`` (a ``LiquidHybridAttention``) and advance ``layer`` by one token: the compiled op
    when ``_compiled_step`` allows it, else ``decode_core``."""
    params = attn.liquid
    sinks = layer.sinks if attn.sinks else (None, None)
    beta = attn.mix_scale(hidden)
    state = layer.state()
    kernel = _compiled_step(attn, q, layer, state, sinks[0])
    if kernel is not None:
        if not layer.keys.is_contiguous() or not layer.values.is_contiguous():  # the op shifts them in place
            layer.keys, layer.values = layer.keys.contiguous(), layer.values.contiguous()
        y = kernel(
            q, k, v, hidden, layer.keys, layer.values, sinks[0], sinks[1], state, valid, params.feature_q.weight,
            params.feature_k.weight, params.decay.down, params.decay.up, params.decay.bias, beta.reshape(-1),
            attn.scaling, DELTA_MIN,
        )  # fmt: skip
        layer.cumulative_length += 1
        return y
    y, layer.keys, layer.values, state = decode_core(
        q, k, v, hidden, layer.keys, layer.values, sinks[0], sinks[1], state, valid,
        params.feature_q.weight, params.feature_k.weight, params.decay.down, params.decay.up, params.decay.bias,
        beta, attn.scaling, attn.backend,
    )  # fmt: skip
    layer.cumulative_length += 1
    layer.set_state(state)
    return y


def _compiled_step(attn: Any, q: Tensor, layer: Any, state: Tensor, sink_keys: Tensor | None) -> Any:
    """The compiled op (``hybrid_decode_kernel``) when it applies: fp32 queries, window, sinks and state, a
    contiguous state, no autograd (the op has no backward); ``None`` otherwise."""
    if torch.is_grad_enabled() or q.dtype != torch.float32:
        return None
    if layer.keys.dtype != torch.float32 or state.dtype != torch.float32 or not state.is_contiguous():
        return None
    if sink_keys is not None and sink_keys.dtype != torch.float32:
        return None
    return hybrid_decode_kernel(attn.backend, device_type=q.device.type)
