"""``LiquidHybridAttention``: a drop-in ``self_attn`` for Llama / Mistral / Qwen2 decoder layers.

It reuses the layer's own ``q_proj``, ``k_proj``, ``v_proj``, ``o_proj`` (and their biases) and adds only
``LiquidParams`` (feature maps, rank-16 decay, mix scale). RoPE is applied to ``q`` and ``k`` exactly as
the original layer does (HF's ``apply_rotary_pos_emb`` with the model's ``position_embeddings``), so the
window part is the original softmax attention restricted to the last ``window`` keys; the liquid part's
feature maps act on the rotated ``q``, ``k``. The math is in ``hybrid.py``.

Forward contract (HF's): ``forward(hidden_states, position_embeddings, attention_mask, past_key_values,
**kwargs) -> (output [B, T, hidden] in the input dtype, None)``. ``attention_mask`` is the 4-D mask the
model builds (bool ``True`` = attend, or additive float) or ``None``; its last query row says which keys
are padding (left or right). ``mode = "softmax"`` runs the original full causal softmax attention with the
same weights (the linearization teacher; it does not use a cache); ``mode = "window"`` reads only the exact
memories (window, sinks, global cache) — the liquid state switched off, for measuring what it contributes.
With ``global_cache = N > 0`` the layer keeps a third memory of at most ``N`` exact key/value pairs per KV
head (``global_cache.py``).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from liquid_memory.hf.cache import liquid_layer
from liquid_memory.hf.decode_step import decode_step, fast_decode_ready
from liquid_memory.hf.errors import PatchError
from liquid_memory.hf.global_cache import DEFAULT_BLOCK, SCORES, ImportanceBoard
from liquid_memory.hf.hybrid import TINY, combine, liquid_part, window_part
from liquid_memory.hf.params import LiquidParams
from liquid_memory.hf.sinks import gather_sinks, mark, merge_sinks, sink_mask
from liquid_memory.hf.three_memories import forward_blocks

MODES = ("hybrid", "softmax", "window")


def _rotary(q: Tensor, k: Tensor, cos: Tensor, sin: Tensor) -> tuple[Tensor, Tensor]:
    from transformers.models.llama.modeling_llama import apply_rotary_pos_emb  # same function in Mistral/Qwen2

    return apply_rotary_pos_emb(q, k, cos.to(q.dtype), sin.to(q.dtype))


def key_validity(attention_mask: Tensor | None, batch: int, length: int, device: torch.device) -> Tensor:
    """``[B, length]`` bool, True where the key is a real token, read from the mask's last query row."""
    if attention_mask is None:
        return torch.ones((batch, length), dtype=torch.bool, device=device)
    if not isinstance(attention_mask, Tensor) or attention_mask.dim() != 4:
        raise PatchError(
            f"LiquidHybridAttention needs a 4-D attention mask (sdpa or eager implementation), got "
            f"{type(attention_mask).__name__}; load the model with attn_implementation='sdpa'"
        )
    row = attention_mask[:, 0, -1, -length:]
    valid = row if row.dtype == torch.bool else row > torch.finfo(row.dtype).min / 2
    return valid.expand(batch, length)


class LiquidHybridAttention(nn.Module):
    """Exact softmax over the last ``window`` tokens (and ``sinks`` first tokens) + the liquid recurrence for
    the other keys (``window=0, sinks=0``: pure liquid; ``window=0, sinks=n``: n exact keys + the recurrence)."""

    def __init__(
        self, original: nn.Module, window: int, *, backend: str | None = None, sinks: int = 0,
        max_half_life: float | None = None, global_cache: int = 0, cache_block: int = DEFAULT_BLOCK,
        cache_score: str = "attention", per_query_mix: bool = False,
    ) -> None:  # fmt: skip
        super().__init__()
        if window < 0:
            raise ValueError(f"window must be >= 0, got {window}")
        if sinks < 0:
            raise ValueError(f"sinks must be >= 0, got {sinks}")
        set_global_cache(self, global_cache, cache_block, cache_score)
        self.board: ImportanceBoard | None = None  # shared by the model's layers (patch_model sets it)
        config = original.config
        self.config, self.layer_idx = config, original.layer_idx
        self.head_dim = original.head_dim
        self.num_heads = config.num_attention_heads
        self.num_kv_heads = config.num_key_value_heads
        self.scaling = original.scaling
        self.is_causal = True
        self.q_proj, self.k_proj, self.v_proj, self.o_proj = (
            original.q_proj, original.k_proj, original.v_proj, original.o_proj,
        )  # fmt: skip
        self.qkv_proj: nn.Module | None = None  # int8 weights: q, k, v rows as one matmul (hf/weights.py)
        self.window, self.sinks, self.backend, self.mode = window, sinks, backend, "hybrid"
        self.liquid = LiquidParams(
            config.hidden_size,
            self.num_heads,
            self.num_kv_heads,
            self.head_dim,
            max_half_life=max_half_life,
            per_query_mix=per_query_mix,
        )
        # fp32 (the state's precision) whatever the model dtype; float64 for float64 reference models
        weight = original.q_proj.weight
        self.liquid.to(device=weight.device, dtype=torch.float64 if weight.dtype == torch.float64 else torch.float32)

    def extra_repr(self) -> str:
        return (
            f"window={self.window}, sinks={self.sinks}, global_cache={self.global_cache}, heads={self.num_heads}, "
            f"kv_heads={self.num_kv_heads}, mode={self.mode}"
        )

    def _project(self, hidden: Tensor, position_embeddings: tuple[Tensor, Tensor]) -> tuple[Tensor, Tensor, Tensor]:
        b, t, _ = hidden.shape
        cos, sin = position_embeddings
        if self.qkv_proj is not None and self.qkv_proj.few_rows(hidden):  # a few rows (decode): one matmul
            return self._project_fused(hidden, cos, sin)
        q = self.q_proj(hidden).view(b, t, -1, self.head_dim).transpose(1, 2)
        k = self.k_proj(hidden).view(b, t, -1, self.head_dim).transpose(1, 2)
        v = self.v_proj(hidden).view(b, t, -1, self.head_dim).transpose(1, 2)
        q, k = _rotary(q, k, cos, sin)
        return q, k, v

    def _project_fused(self, hidden: Tensor, cos: Tensor, sin: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """``_project`` with the fused ``qkv_proj`` rows: one matmul, and RoPE on the query and key heads together
        (HF's ``apply_rotary_pos_emb`` formula, ``x·cos + rotate_half(x)·sin``, element by element: the same
        numbers as rotating ``q`` and ``k`` apart)."""
        from transformers.models.llama.modeling_llama import rotate_half  # as _rotary's formula

        b, t, _ = hidden.shape
        heads = self.num_heads + self.num_kv_heads
        qkv = self.qkv_proj(hidden).view(b, t, heads + self.num_kv_heads, self.head_dim).transpose(1, 2)
        qk, v = qkv[:, :heads], qkv[:, heads:]
        cos, sin = cos.to(qk.dtype).unsqueeze(1), sin.to(qk.dtype).unsqueeze(1)
        qk = qk * cos + rotate_half(qk) * sin
        q, k = qk.split((self.num_heads, self.num_kv_heads), dim=1)
        return q, k, v

    def forward(
        self,
        hidden_states: Tensor,
        position_embeddings: tuple[Tensor, Tensor] | None = None,
        attention_mask: Tensor | None = None,
        past_key_values: Any = None,
        **kwargs: Any,
    ) -> tuple[Tensor, None]:
        if position_embeddings is None:
            raise PatchError("LiquidHybridAttention needs position_embeddings (the model passes them)")
        if self.mode == "softmax":
            return self.softmax_forward(hidden_states, position_embeddings, attention_mask), None
        b, t, _ = hidden_states.shape
        q, k, v = self._project(hidden_states, position_embeddings)
        layer = None
        if past_key_values is not None:
            layer = liquid_layer(past_key_values, self.layer_idx, self.window, self.global_cache)
        keeps_state = self._keeps_state(layer)
        if layer is not None and fast_decode_ready(self, layer, t):  # decode_step.py
            valid = None if attention_mask is None else key_validity(attention_mask, b, self.window, q.device)
            return self.o_proj(decode_step(self, q, k, v, hidden_states, layer, valid)), None
        log_a = self.liquid.decay(hidden_states)
        if not keeps_state:  # the exact memories only: no state, no decays carried
            log_a = log_a[..., :0]
        state, seen_before = None, 0
        if layer is not None:
            state, seen_before = layer.state(), layer.cumulative_length
            k, packed = layer.update(k, torch.cat([v, log_a.to(v.dtype)], dim=-1))
            # the decay in the state's precision (float64 runs: never rounded through float32)
            v, log_a = packed[..., : self.head_dim], packed[..., self.head_dim :].to(log_a.dtype)
        length = k.shape[2]
        n_cached = length - t
        valid = key_validity(attention_mask, b, length, hidden_states.device)
        acc = torch.float64 if q.dtype == torch.float64 else torch.float32
        sinks, liquid_valid = self._sinks(k.to(acc), v.to(acc), valid, n_cached, layer, seen_before)
        if self.global_cache > 0:
            base = seen_before - n_cached  # absolute position of k[:, :, 0]
            held = (layer.slots, layer.bounds, layer.received) if layer is not None else (None, None, None)
            board = self.board if self.cache_score == "attention" else None
            if board is not None and self.layer_idx == 0:  # the first layer starts the board of this call
                board.start(b, base, length, q.to(acc))
            y, new_state, slots, bounds, received = forward_blocks(
                q.to(acc), k.to(acc), v.to(acc), log_a, valid, liquid_valid, sinks, n_cached, base, state, *held,
                window=self.window, block=self.cache_block, n_slots=self.global_cache, score=self.cache_score,
                scaling=self.scaling, beta=self.mix_scale(hidden_states), feature_q=self.liquid.feature_q,
                feature_k=self.liquid.feature_k, backend=self.backend, read_liquid=self.mode == "hybrid", board=board,
            )  # fmt: skip
            if layer is not None:
                layer.set_state(new_state)
                keep = min(int(bounds[1].min()) - base, length)
                layer.slots, layer.bounds, layer.received = slots.detached(), bounds, received[:, :, keep:].detach()
                layer.retain_from(keep)
        else:
            y = self._two_memories(q.to(acc), k.to(acc), v.to(acc), log_a, valid, liquid_valid, sinks, n_cached,
                                   state, layer, hidden_states)  # fmt: skip
        y = y.to(hidden_states.dtype).transpose(1, 2).reshape(b, t, -1)
        return self.o_proj(y), None

    def _keeps_state(self, layer: Any) -> bool:
        """Whether this call carries the liquid state (and the window keys' decays, which it needs).

        A ``mode="window"`` call reads only the exact memories: it keeps a state only when its cache already holds
        one (a hybrid prefill, then window decoding) or the ``"recall"`` score ranks the global cache by it. A
        cache that dropped its state cannot be read in ``"hybrid"`` mode: the keys that left meanwhile are lost."""
        if self.mode == "hybrid":
            if layer is not None and layer.state_dropped:
                raise PatchError(
                    "this cache was filled with mode='window' and holds no liquid state; start a new cache "
                    "(LiquidHybridCache(model)) to read the state"
                )
            return True
        has_state = layer is not None and layer.state() is not None
        return has_state or (self.global_cache > 0 and self.cache_score == "recall")

    def _two_memories(self, q, k, v, log_a, valid, liquid_valid, sinks, n_cached, state, layer, hidden) -> Tensor:
        """Window (+ sinks) and the liquid state (``hybrid.py``); ``mode="window"``: the exact part alone."""
        win = None
        if self.window > 0 or self.sinks > 0:  # an exact part: window keys and/or sink keys
            win = window_part(q, k, v, valid, n_cached, self.window, self.scaling, sinks)
        if self.mode == "window":
            if win is None:
                raise PatchError("mode='window' needs exact keys: a window > 0 or sinks")
            if layer is not None:  # the window's departures did not enter the state
                layer.set_state(None)
            return win[0] / win[1].clamp_min(TINY).unsqueeze(-1)
        phi_q, phi_k = self.liquid.feature_q(q), self.liquid.feature_k(k)
        lin, new_state = liquid_part(phi_q, phi_k, v, log_a, liquid_valid, n_cached, self.window, state, self.backend)
        if layer is not None:
            layer.set_state(new_state)
        return combine(win, lin.to(q.dtype), self.mix_scale(hidden), self.head_dim)

    def mix_scale(self, hidden: Tensor) -> Tensor:
        """β of the shared normaliser: ``[H]`` (one per head; a subclass may return ``[B, H, T]``, per query)."""
        return self.liquid.mix_scale(hidden)

    def _sinks(self, k: Tensor, v: Tensor, valid: Tensor, n_cached: int, layer: Any, seen_before: int):
        """``(sinks for window_part or None, [B, L] validity for the liquid part)`` (see ``sinks.py``).

        With a cache, the stored sinks (absolute positions) are moved into this call's key coordinates, the
        new keys' sinks are ranked after the valid keys already seen, and the store is updated."""
        if self.sinks == 0:
            return None, valid
        seen = layer.sink_valid_seen(valid.shape[0], valid.device) if layer is not None else None
        if layer is not None and layer.sinks is not None and bool((seen >= self.sinks).all()):
            stored = layer.sink_store(layer.sinks, seen_before - n_cached)  # every slot filled: nothing new
            if bool((stored[2] < 0).all()):  # and all of them older than the held keys (the decode fast path)
                return stored, valid
        new_mask = sink_mask(valid[:, n_cached:], self.sinks, seen)
        new = gather_sinks(k[:, :, n_cached:], v[:, :, n_cached:], new_mask, self.sinks)
        new = (new[0], new[1], new[2] + n_cached, new[3])
        if layer is None:
            return new, valid & ~new_mask
        base = seen_before - n_cached  # absolute position of k[:, :, 0]
        stored = layer.sink_store(new, base)
        both = merge_sinks(stored, new, self.sinks) if stored is not None else new
        layer.set_sinks(both, base, seen + valid[:, n_cached:].sum(-1))
        return both, valid & ~mark(both[2], both[3], k.shape[2])

    @torch.no_grad()
    def calibrate(self, hidden: Tensor, position_embeddings: tuple[Tensor, Tensor]) -> Tensor:
        """Set ``β_h`` so the liquid mass equals the softmax's mass on the non-sink keys older than the window
        (median over queries of ``ln Σ_old e^{s_ts} - ln Σ_old w_ts`` on ``hidden`` ``[B, T, hidden]``, no
        padding; at ``window = 0`` the older keys are every non-sink key up to and including ``t``).

        Without it the two masses start orders of magnitude apart (SmolLM2's logits reach 20+) and the liquid
        part's gradient vanishes. Returns the new ``β`` (unchanged when there is no exact part — ``window = 0``
        without sinks, where β cancels — or ``T <= window + sinks``).
        """
        b, t, _ = hidden.shape
        if (self.window == 0 and self.sinks == 0) or t <= self.window + self.sinks:
            return self.liquid.mix_log_scale.detach().clone()
        beta = self.log_mass_ratio(hidden, position_embeddings).median(dim=1).values
        self.liquid.mix_log_scale.copy_(beta)
        return beta

    @torch.no_grad()
    def log_mass_ratio(self, hidden: Tensor, position_embeddings: tuple[Tensor, Tensor]) -> Tensor:
        """``[H, N]``: per head and query (``B × (T - window - sinks)`` queries, no padding) the β that would make
        this query's liquid mass equal the softmax's mass on its older non-sink keys, ``ln Σ_old e^{s_ts} -
        ln Σ_old w_ts`` (``calibrate`` takes the median; its spread says how far one β per head is from each query)."""
        b, t, _ = hidden.shape
        q, k, v = self._project(hidden, position_embeddings)
        valid = torch.ones((b, t), dtype=torch.bool, device=hidden.device)
        not_sink = ~sink_mask(valid, self.sinks)
        phi_q, phi_k = self.liquid.feature_q(q.float()), self.liquid.feature_k(k.float())
        log_a = self.liquid.decay(hidden)
        lin, _ = liquid_part(phi_q, phi_k, v.float(), log_a, valid & not_sink, 0, self.window, None, self.backend)
        log_d = torch.log(lin[..., self.head_dim].clamp_min(1e-30))[:, :, self.window + self.sinks :]
        kk = k.repeat_interleave(self.num_heads // self.num_kv_heads, dim=1)
        scores = torch.einsum("bhtd,bhsd->bhts", q.float(), kk.float()) * self.scaling
        pos = torch.arange(t, device=hidden.device)
        old = (pos[None, :] <= pos[:, None] - self.window)[None, None] & not_sink[:, None, None, :]
        lse_old = scores.masked_fill(~old, float("-inf")).logsumexp(-1)[:, :, self.window + self.sinks :]
        return (lse_old - log_d).transpose(0, 1).reshape(self.num_heads, -1)

    def softmax_forward(self, hidden: Tensor, position_embeddings: tuple[Tensor, Tensor], attention_mask) -> Tensor:
        """The original layer's full causal softmax attention (SDPA, GQA), no cache: the teacher."""
        b, t, _ = hidden.shape
        q, k, v = self._project(hidden, position_embeddings)
        valid = key_validity(attention_mask, b, t, hidden.device)
        causal = torch.ones((t, t), dtype=torch.bool, device=hidden.device).tril()
        mask = causal[None, None] & valid[:, None, None, :]
        mask = mask | ~mask.any(-1, keepdim=True)  # rows with no visible key (padding): harmless, never NaN
        y = nn.functional.scaled_dot_product_attention(q, k, v, attn_mask=mask, scale=self.scaling, enable_gqa=True)
        return self.o_proj(y.transpose(1, 2).reshape(b, t, -1))


def set_global_cache(
    layer: LiquidHybridAttention, slots: int, block: int = DEFAULT_BLOCK, score: str = "attention"
) -> None:
    """Give ``layer`` a global cache of ``slots`` exact pairs per KV head (0 = none), departing in ``block``s and
    chosen by ``score`` (``global_cache.SCORES``). An inference-time setting like the window: a linearized
    model runs with any size (``global_cache.py``)."""
    if slots < 0:
        raise ValueError(f"global_cache must be >= 0, got {slots}")
    if block < 1:
        raise ValueError(f"cache_block must be >= 1, got {block}")
    if score not in SCORES:
        raise ValueError(f"cache_score must be one of {', '.join(SCORES)}, got {score!r}")
    layer.global_cache, layer.cache_block, layer.cache_score = int(slots), int(block), score
