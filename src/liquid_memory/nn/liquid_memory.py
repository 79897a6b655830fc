"""``LiquidMemory``: a drop-in for ``torch.nn.MultiheadAttention`` with linear memory in sequence length."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.modules.linear import NonDynamicallyQuantizableLinear

from liquid_memory.nn.decay import DELTA_MIN, make_decay_projection, reset_decay_projection
from liquid_memory.nn.decode import DecodeMixin
from liquid_memory.nn.implicit_attention import attention_weights
from liquid_memory.nn.masks import SUPPORTED_MASKS, padding_to_bool
from liquid_memory.nn.mha_inputs import attention_mode, to_batch_first
from liquid_memory.nn.norm import HeadRMSNorm
from liquid_memory.nn.short_conv import DEFAULT_SHORT_CONV, CausalShortConv
from liquid_memory.ops.delta import delta_scan
from liquid_memory.ops.dispatch import liquid_scan, liquid_scan_readout


class LiquidMemory(DecodeMixin, nn.Module):
    r"""Gated linear recurrence with input-dependent ("liquid") decay, shaped like ``nn.MultiheadAttention``.

    Per head (``d = embed_dim // num_heads``), with fp32 state ``S ∈ R^{d×d}``::

        q_t, k_t, v_t = projections of the query / key / value streams (MHA's in_proj parameters)
        δ_t = softplus(decay_proj(x^k_t)) + 1e-6        a_t = exp(-δ_t)      (per key channel)
                          decay_proj = W_δ (kdim → E), or U·V (kdim → r → E) with decay_rank=r
        S_t = diag(a_t) S_{t-1} + k_t v_t^T            o_t = S_t^T q_t / sqrt(d)
        y_t = out_proj(RMSNorm_per_head(o_t))                 (output_gate: ⊙ σ(W_g x^q_t) before out_proj)
        (short_conv=K: q_t ← SiLU(Σ_{j<K} w^q_j ⊙ q_{t-j}) per channel, right after the projections (causal, each
         stream over its own sequence from zeros), likewise k_t and v_t; the decay keeps reading x^k_t)
        (qk_norm: q_t ← q_t/‖q_t‖, k_t ← k_t/‖k_t‖ per head, after the projections and the short conv)
        (delta_rule: S_t = (I − β_t k_t k_tᵀ) diag(a_t) S_{t-1} + β_t k_t v_tᵀ,  β_t = σ(beta_proj(x^k_t)) per head)

    Which states a query reads depends on the call:

    * **causal** (``is_causal=True`` alone is enough, or an ``attn_mask`` that is exactly the causal
      pattern, bool or float ``-inf``): ``o_t`` reads ``S_t``. Requires L == S.
    * **bidirectional** (self-attention: ``query``, ``key`` and ``value`` are the same tensor, no causal
      mask): ``o_t`` reads ``S→_t + S←_{t+1}`` (a second recurrence from the end).
    * **cross-attention** (otherwise): every query reads the final state ``S_S``.

    Args:
        embed_dim, num_heads, dropout, bias, kdim, vdim, batch_first, device, dtype: as
            ``nn.MultiheadAttention``. ``dropout`` applies to ``o_t`` in training mode.
        add_bias_kv, add_zero_attn: not supported by a recurrence; ``True`` raises ``NotImplementedError``.
        coupled_input: scale keys by ``(1 - a_t)`` (an exponential moving average). Off by default: it
            starves the long-memory channels (docs/architecture.md §2).
        out_norm: per-head RMSNorm (weight ``out_norm.weight`` of shape ``[embed_dim]``).
        out_norm_eps: the norm's eps, on the scale of ``o/sqrt(d)``. A larger eps (1e-2) bounds the gradient
            the norm gives read-outs near zero (the first tokens, whose state holds almost nothing): it reduces,
            but does not remove, the gradient spikes of LiquidLM training (``benchmarks/results/lm/grad_probe.txt``).
        backend: force a ``liquid_scan`` backend (``cpp``, ``aoti``, ``chunked``/``reference``, ``naive``);
            default: ``LM_BACKEND`` or the fastest licensed backend.
        precision_safe: ``None`` (auto above 64K tokens), ``True`` or ``False``; see ``liquid_scan``.
        decay_rank: ``None`` (default): ``decay_proj`` is a full ``nn.Linear(kdim, embed_dim)`` (keys
            ``decay_proj.weight``, ``decay_proj.bias``). An int ``r``: ``W_δ = U·V`` of rank ``r`` (keys
            ``decay_proj.down.weight`` ``[r, kdim]``, ``decay_proj.up.weight`` ``[embed_dim, r]``,
            ``decay_proj.up.bias`` ``[embed_dim]``), ``r·(kdim + embed_dim)`` instead of ``kdim·embed_dim``
            multiply-adds per token. Either way the bias gets the multi-timescale init and an MHA
            ``state_dict`` loads with only the liquid parameters missing.
        output_gate: multiply the normalised read-out by ``σ(W_g x^q)`` (``gate_proj.weight`` ``[E, E]``, no
            bias) before ``out_proj``, as GLA / Mamba gate their outputs: the layer can switch its read-out off
            per channel and token. Off by default (MHA-shaped parameters only).
        qk_norm: divide each head's ``q_t`` and ``k_t`` by their L2 norms (``max(‖·‖, 1e-6)``) right after the
            projections, before the ``(1 - a)`` coupling and padding mask; the read-out keeps its ``1/sqrt(d)``.
            As DeltaNet and Gated DeltaNet do for recall: every write has unit key norm, so what a query reads
            is a cosine-weighted sum of values. No parameters; off by default.
        delta_rule: the gated delta rule (``ops/delta.py``): each write first removes what the decayed state
            returns for ``k_t`` (write strength ``β_t``, ``beta_proj`` ``Linear(kdim, num_heads)``, bias 0 → β = ½),
            as Gated DeltaNet / Kimi Delta Attention do (their decay order; per key channel, as the liquid decay is).
            Requires ``qk_norm=True`` (unit keys keep ``I − β k kᵀ`` a contraction) and ``coupled_input=False``.
            Causal calls, ``prefill`` and ``step`` only (bidirectional / cross-attention and ``need_weights=True``
            raise ``NotImplementedError``); runs in PyTorch whatever ``backend`` says (no compiled kernel has it).
            Padded keys write nothing (``β = 0``, ``a = 1``). Off by default.
        short_conv: ``0`` (off) or a kernel size ``K ≥ 2``: a causal depthwise convolution over time on each of the
            projected q, k and v (one kernel per channel, no bias, ``qkv_conv.weight`` ``[3E, 1, K]``, uniform
            ±1/sqrt(K) init), as flash-linear-attention's GLA / DeltaNet layers carry: a key can then hold the token
            before it, which associative recall needs. Every mode: bidirectional convolves the one sequence causally
            too; cross-attention convolves the query and the key/value streams apart; ``need_weights`` weights apply
            to the convolved values. Decode state: also the last ``K - 1`` projected q/k/v rows. Padded positions
            enter as zeros (a left-padded sequence gives the unpadded one's outputs; in cross-attention the mask
            covers keys and values only).
        short_conv_activation: ``"silu"`` (default, flash-linear-attention's) or ``None`` after the convolution.

    Shapes (``N`` batch, ``L`` target length, ``S`` source length, ``E`` embed_dim):
        query ``(L, E)`` unbatched, ``(L, N, E)`` or ``(N, L, E)`` with ``batch_first``; key ``(S, N, kdim)``,
        value ``(S, N, vdim)`` likewise. ``key_padding_mask`` ``(N, S)``: bool (True = padded) or float
        (0 / -inf); padded keys contribute nothing and leave the state unchanged.

    Returns:
        ``(attn_output, attn_weights)``: output shaped like ``query``; weights ``(N, L, S)`` averaged over
        heads (``(N, H, L, S)`` with ``average_attn_weights=False``; unbatched drops ``N``) when
        ``need_weights=True`` and ``L·S ≤ 2^24`` — the implicit attention matrix (see
        ``implicit_attention``) — else ``None`` (with one warning when too large).
    """

    __constants__ = ["batch_first"]

    def __init__(
        self,
        embed_dim: int,
        num_heads: int,
        dropout: float = 0.0,
        bias: bool = True,
        add_bias_kv: bool = False,
        add_zero_attn: bool = False,
        kdim: int | None = None,
        vdim: int | None = None,
        batch_first: bool = False,
        device=None,
        dtype=None,
        *,
        coupled_input: bool = False,
        out_norm: bool = True,
        out_norm_eps: float = 1e-5,
        backend: str | None = None,
        precision_safe: bool | None = None,
        decay_rank: int | None = None,
        output_gate: bool = False,
        qk_norm: bool = False,
        delta_rule: bool = False,
        short_conv: int = DEFAULT_SHORT_CONV,
        short_conv_activation: str | None = "silu",
    ) -> None:
        super().__init__()
        if embed_dim <= 0 or num_heads <= 0:
            raise ValueError(f"embed_dim and num_heads must be > 0, got {embed_dim} and {num_heads}")
        if embed_dim % num_heads:
            raise ValueError(f"embed_dim ({embed_dim}) must be divisible by num_heads ({num_heads})")
        if not out_norm_eps > 0:
            raise ValueError(f"out_norm_eps must be > 0, got {out_norm_eps}")
        if add_bias_kv or add_zero_attn:
            raise NotImplementedError(
                "LiquidMemory does not support add_bias_kv or add_zero_attn: a recurrence has no extra "
                "key/value slots. " + SUPPORTED_MASKS
            )
        if delta_rule and (not qk_norm or coupled_input):
            raise ValueError("delta_rule=True needs qk_norm=True (unit-norm keys) and coupled_input=False")
        factory = {"device": device, "dtype": dtype}
        self.embed_dim, self.num_heads = embed_dim, num_heads
        self.head_dim = embed_dim // num_heads
        self.kdim = kdim if kdim is not None else embed_dim
        self.vdim = vdim if vdim is not None else embed_dim
        self._qkv_same_embed_dim = self.kdim == embed_dim and self.vdim == embed_dim
        self.dropout, self.batch_first = dropout, batch_first
        self.coupled_input, self.backend, self.precision_safe = coupled_input, backend, precision_safe
        self.qk_norm = qk_norm
        if self._qkv_same_embed_dim:
            self.in_proj_weight = nn.Parameter(torch.empty(3 * embed_dim, embed_dim, **factory))
            self.register_parameter("q_proj_weight", None)
            self.register_parameter("k_proj_weight", None)
            self.register_parameter("v_proj_weight", None)
        else:
            self.q_proj_weight = nn.Parameter(torch.empty(embed_dim, embed_dim, **factory))
            self.k_proj_weight = nn.Parameter(torch.empty(embed_dim, self.kdim, **factory))
            self.v_proj_weight = nn.Parameter(torch.empty(embed_dim, self.vdim, **factory))
            self.register_parameter("in_proj_weight", None)
        if bias:
            self.in_proj_bias = nn.Parameter(torch.empty(3 * embed_dim, **factory))
        else:
            self.register_parameter("in_proj_bias", None)
        self.out_proj = NonDynamicallyQuantizableLinear(embed_dim, embed_dim, bias=bias, **factory)
        self.bias_k = self.bias_v = None
        self.add_zero_attn = False
        self.decay_rank = decay_rank
        self.decay_proj = make_decay_projection(self.kdim, embed_dim, decay_rank, **factory)
        self.out_norm = HeadRMSNorm(num_heads, self.head_dim, out_norm_eps, **factory) if out_norm else None
        self.gate_proj = nn.Linear(embed_dim, embed_dim, bias=False, **factory) if output_gate else None
        self.delta_rule = delta_rule
        self.beta_proj = None
        if delta_rule:  # β's random draws leave the global RNG as it was: the other parameters init as without it
            with torch.random.fork_rng(devices=[]):
                self.beta_proj = nn.Linear(self.kdim, num_heads, **factory)
        if isinstance(short_conv, bool) or not isinstance(short_conv, int) or short_conv < 0 or short_conv == 1:
            raise ValueError(f"short_conv is a kernel size >= 2 (or 0 = off), got {short_conv!r}")
        self.short_conv = short_conv
        self.qkv_conv = None
        if short_conv:  # as β: its random draws leave the other parameters' init unchanged
            with torch.random.fork_rng(devices=[]):
                self.qkv_conv = CausalShortConv(3 * embed_dim, short_conv, short_conv_activation, **factory)
        self._conv_window: Tensor | None = None
        self._state: Tensor | None = None
        self._fp32_copies: dict[int, tuple[tuple[int, int], Tensor]] = {}  # see _fp32
        self._reset_parameters()
        # Any forward pre-hook makes PyTorch's fused TransformerEncoderLayer fast path step aside, which
        # would otherwise run softmax attention on our in_proj weights. This one also refuses nested input.
        self.register_forward_pre_hook(_reject_nested_input)

    def _reset_parameters(self) -> None:
        """MHA's initialisation for the shared parameters; multi-timescale decay for ``decay_proj``."""
        if self._qkv_same_embed_dim:
            nn.init.xavier_uniform_(self.in_proj_weight)
        else:
            for weight in (self.q_proj_weight, self.k_proj_weight, self.v_proj_weight):
                nn.init.xavier_uniform_(weight)
        if self.in_proj_bias is not None:
            nn.init.zeros_(self.in_proj_bias)
            nn.init.zeros_(self.out_proj.bias)
        reset_decay_projection(self.decay_proj, self.num_heads, self.head_dim)
        if self.gate_proj is not None:
            nn.init.xavier_uniform_(self.gate_proj.weight)
        if self.beta_proj is not None:
            with torch.random.fork_rng(devices=[]):
                nn.init.normal_(self.beta_proj.weight, std=0.02)
            nn.init.zeros_(self.beta_proj.bias)
        if self.qkv_conv is not None:
            with torch.random.fork_rng(devices=[]):
                self.qkv_conv.reset_parameters()

    @classmethod
    def from_mha(cls, mha: nn.MultiheadAttention, **kwargs) -> LiquidMemory:
        """A ``LiquidMemory`` with ``mha``'s configuration and weights (decay and norm freshly initialised)."""
        if mha.bias_k is not None or mha.add_zero_attn:
            raise NotImplementedError("cannot convert an nn.MultiheadAttention with add_bias_kv or add_zero_attn")
        reference = mha.out_proj.weight
        module = cls(
            mha.embed_dim, mha.num_heads, dropout=mha.dropout, bias=mha.in_proj_bias is not None,
            kdim=mha.kdim, vdim=mha.vdim, batch_first=mha.batch_first,
            device=reference.device, dtype=reference.dtype, **kwargs,
        )  # fmt: skip
        result = module.load_state_dict(mha.state_dict(), strict=False)
        if result.unexpected_keys:
            raise RuntimeError(f"unexpected MultiheadAttention parameters: {result.unexpected_keys}")
        return module

    # ------------------------------------------------------------------ forward

    def forward(
        self,
        query: Tensor,
        key: Tensor,
        value: Tensor,
        key_padding_mask: Tensor | None = None,
        need_weights: bool = True,
        attn_mask: Tensor | None = None,
        average_attn_weights: bool = True,
        is_causal: bool = False,
    ) -> tuple[Tensor, Tensor | None]:
        """See the class docstring; the signature and return value are ``nn.MultiheadAttention``'s."""
        self_attention = query is key and key is value
        q_in, k_in, v_in, unbatched = to_batch_first(query, key, value, self._widths(), self.batch_first)
        batch, target_len, _ = q_in.shape
        source_len = k_in.shape[1]
        mode = attention_mode(attn_mask, is_causal, self_attention, target_len, source_len)
        if self.delta_rule and (mode != "causal" or need_weights):
            raise NotImplementedError(
                f"delta_rule=True supports causal calls with need_weights=False only (got mode {mode!r}, "
                f"need_weights={need_weights}); use is_causal=True and need_weights=False"
            )
        padded = None
        if key_padding_mask is not None:
            if unbatched and key_padding_mask.dim() == 1:
                key_padding_mask = key_padding_mask.unsqueeze(0)
            padded = padding_to_bool(key_padding_mask, batch, source_len)

        q, k, v, log_a, _ = self._project(q_in, k_in, v_in, padded, pad_queries=mode != "cross")
        weights = self._weights(q, k, log_a, mode, need_weights, average_attn_weights, unbatched)
        if mode == "causal":
            o, _ = self._scan_read(q, k, v, log_a, beta=self._beta(k_in, padded))
        else:
            o = self._read(self._mix(q, k, v, log_a, mode))
        del q, k, v, log_a  # in inference nothing else holds them: free before the output stage (linear memory)
        out = self._output(o, q_in)
        if unbatched:
            out = out.squeeze(0)
        elif not self.batch_first:
            out = out.transpose(0, 1)
        return out, weights

    def _widths(self) -> tuple[int, int, int]:
        return self.embed_dim, self.kdim, self.vdim

    def _project(
        self,
        q_in: Tensor,
        k_in: Tensor,
        v_in: Tensor,
        padded: Tensor | None,
        conv_window: Tensor | None = None,
        pad_queries: bool = True,
    ) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor | None]:
        """Heads-split ``q`` (unscaled: the read-out applies 1/sqrt(d)), ``k``, ``v`` and fp32 ``log_a``
        ``[B, H, T, d]``, as views of ``[B, T, ·]`` projection buffers (the kernels read them in place), and the
        short convolution's new window (``None`` without ``short_conv``).

        Self-attention with MHA's packed ``in_proj_weight`` takes one GEMM for q, k and v. The decay has its
        own fp32 GEMM (full or rank ``r``) whatever the model dtype. With ``short_conv`` the projections go through the
        depthwise convolution (``CausalShortConv.convolve_qkv``: padded rows as zeros), continuing ``conv_window``.
        """
        packed = None
        if q_in is k_in and k_in is v_in and self._qkv_same_embed_dim:
            packed = F.linear(q_in, self.in_proj_weight, self.in_proj_bias)
            q, k, v = packed.chunk(3, dim=-1)
        else:
            w_q, w_k, w_v = self._projection_weights()
            b_q, b_k, b_v = self.in_proj_bias.chunk(3) if self.in_proj_bias is not None else (None, None, None)
            q, k, v = F.linear(q_in, w_q, b_q), F.linear(k_in, w_k, b_k), F.linear(v_in, w_v, b_v)
        window = None
        if self.qkv_conv is not None:
            q, k, v, window = self.qkv_conv.convolve_qkv(q, k, v, padded, conv_window, pad_queries, packed)
        q, k, v = self._heads(q), self._heads(k), self._heads(v)
        if self.qk_norm:
            q, k = _unit_heads(q), _unit_heads(k)
        log_a = self._log_decay(k_in)
        if self.coupled_input:
            k = k * (-torch.expm1(log_a)).to(k.dtype)
        if padded is not None:
            keep = (~padded)[:, None, :, None]
            k = k * keep.to(k.dtype)
            log_a = log_a * keep.to(log_a.dtype)
        return q, k, v, log_a, window

    def _projection_weights(self) -> tuple[Tensor, Tensor, Tensor]:
        if self._qkv_same_embed_dim:
            return self.in_proj_weight.chunk(3)
        return self.q_proj_weight, self.k_proj_weight, self.v_proj_weight

    def _log_decay(self, k_in: Tensor) -> Tensor:
        """``log a = -(softplus(W_δ x^k + b_δ) + δ_min)``, computed in fp32 whatever the model dtype."""
        z = self._decay_logits(k_in.float())
        return self._heads(F.softplus(z).add_(DELTA_MIN).neg_())  # in place: softplus's backward needs only z

    def _decay_logits(self, x: Tensor) -> Tensor:
        """``W_δ x + b_δ`` in fp32 (``x`` fp32): the full matrix, or ``U (V x)`` without forming ``U·V``."""
        proj, f = self.decay_proj, self._fp32
        if self.decay_rank is None:
            return F.linear(x, f(proj.weight), f(proj.bias))
        return F.linear(F.linear(x, f(proj.down.weight)), f(proj.up.weight), f(proj.up.bias))

    def _fp32(self, w: Tensor) -> Tensor:
        """``w`` in fp32. For a bf16/fp16 layer without autograd the copy is kept until ``w`` changes (its
        version counter): converting the decay weight on every decode step cost more than reading it (measured:
        bf16 decode 1.2× fp32's with the per-step conversion)."""
        if w.dtype == torch.float32 or (torch.is_grad_enabled() and w.requires_grad):
            return w.float()
        key = (w.data_ptr(), w._version)
        cached = self._fp32_copies.get(id(w))
        if cached is None or cached[0] != key:
            cached = (key, w.detach().float())
            self._fp32_copies[id(w)] = cached
        return cached[1]

    def _heads(self, x: Tensor) -> Tensor:
        """``[B, T, E]`` (possibly a column slice of a wider buffer) → a ``[B, H, T, d]`` view, no copy: the
        ``cpp`` kernels read strided rows and write ``[B, T, H, d]`` outputs, so heads merge back for free."""
        batch, length, _ = x.shape
        return x.view(batch, length, self.num_heads, self.head_dim).transpose(1, 2)

    def _scan(self, q, k, v, log_a, **kwargs) -> tuple[Tensor, Tensor | None]:
        return liquid_scan(q, k, v, log_a, backend=self.backend, precision_safe=self.precision_safe, **kwargs)

    def _read(self, o: Tensor) -> Tensor:
        """The read-out of raw ``o = Sᵀq`` ``[B, H, L, d]``: ``RMSNorm(o/sqrt(d))·w`` (the scale folded into the
        norm's eps), or ``o/sqrt(d)`` without ``out_norm``."""
        scale = self.head_dim**-0.5
        return o * scale if self.out_norm is None else self.out_norm(o, input_scale=scale)

    def _beta(self, k_in: Tensor, padded: Tensor | None) -> Tensor | None:
        """Delta rule write strength ``σ(beta_proj(x^k))`` ``[B, H, T]`` fp32, 0 at padded keys; None without it."""
        if self.beta_proj is None:
            return None
        proj = self.beta_proj
        beta = torch.sigmoid(F.linear(k_in.float(), proj.weight.float(), proj.bias.float())).transpose(1, 2)
        return beta if padded is None else beta * (~padded)[:, None, :].to(beta.dtype)

    def _scan_read(self, q, k, v, log_a, beta: Tensor | None = None, **kwargs) -> tuple[Tensor, Tensor | None]:
        """Causal scan + read-out. Without autograd the ``cpp`` backend fuses the read-out into the scan's
        epilogue (``liquid_scan_readout``); with autograd: ``liquid_scan`` then :meth:`_read`. With ``beta`` (the
        delta rule): ``delta_scan`` in PyTorch, then :meth:`_read`."""
        if beta is not None:
            o, state = delta_scan(q, k, v, log_a, beta, **kwargs)
            return self._read(o), state
        if torch.is_grad_enabled() and any(t.requires_grad for t in (q, k, v, log_a)):
            o, state = self._scan(q, k, v, log_a, **kwargs)
            return self._read(o), state
        scale = self.head_dim**-0.5
        norm = self.out_norm
        return liquid_scan_readout(
            q, k, v, log_a, norm_weight=None if norm is None else norm.weight.detach(),
            eps=1e-5 if norm is None else norm.eps / scale**2, out_scale=scale,
            backend=self.backend, precision_safe=self.precision_safe, **kwargs,
        )  # fmt: skip

    def _mix(self, q: Tensor, k: Tensor, v: Tensor, log_a: Tensor, mode: str) -> Tensor:
        """``o`` ``[B, H, L, d]`` for the three read-out modes (docs/architecture.md §2)."""
        if mode == "cross":
            _, state = self._scan(k, k, v, log_a, output_final_state=True)
            return torch.einsum("bhld,bhde->bhle", q.float(), state).to(q.dtype)
        o, _ = self._scan(q, k, v, log_a)
        if mode == "bidirectional":
            # o_t needs S←_{t+1}: run the reverse scan with the queries shifted one step later.
            q_next = F.pad(q[:, :, :-1], (0, 0, 1, 0))
            backward, _ = self._scan(q_next, k, v, log_a, reverse=True)
            o = o + F.pad(backward[:, :, 1:], (0, 0, 0, 1))
        return o

    def _output(self, o: Tensor, query: Tensor) -> Tensor:
        """Dropout, concatenate heads, output gate (from the batch-first ``query`` input), ``out_proj``: read-out
        ``[B, H, L, d]`` → ``[B, L, E]`` (the merge is a free view when ``o`` has ``[B, L, H, d]`` memory, as the
        ``cpp`` kernels write it)."""
        o = F.dropout(o, p=self.dropout, training=self.training)
        batch, _, length, _ = o.shape
        merged = o.transpose(1, 2).reshape(batch, length, self.embed_dim)
        if self.gate_proj is not None:
            merged = merged * torch.sigmoid(self.gate_proj(query)).to(merged.dtype)
        return self.out_proj(merged)

    def _weights(
        self, q: Tensor, k: Tensor, log_a: Tensor, mode: str, need: bool, average: bool, unbatched: bool
    ) -> Tensor | None:
        if not need:
            return None
        return attention_weights(q * self.head_dim**-0.5, k, log_a, mode, average=average, unbatched=unbatched)

    def extra_repr(self) -> str:
        return (
            f"embed_dim={self.embed_dim}, num_heads={self.num_heads}, batch_first={self.batch_first}, "
            f"coupled_input={self.coupled_input}, out_norm={self.out_norm is not None}, "
            f"out_norm_eps={self.out_norm.eps if self.out_norm is not None else None}, "
            f"decay_rank={self.decay_rank}, output_gate={self.gate_proj is not None}"
            + (", qk_norm=True" if self.qk_norm else "")
            + (", delta_rule=True" if self.delta_rule else "")
            + (
                f", short_conv={self.short_conv}, short_conv_activation={self.qkv_conv.activation}"
                if self.short_conv
                else ""
            )
        )


def _unit_heads(x: Tensor) -> Tensor:
    """``x / max(‖x‖, 1e-6)`` over each head's channels, for a ``[B, H, T, d]`` view: normalised in ``[B, T, H, d]``
    order so the result keeps the token-major memory the kernels expect of ``_heads`` views."""
    return F.normalize(x.transpose(1, 2), dim=-1, eps=1e-6).transpose(1, 2)


def _reject_nested_input(module: nn.Module, args: tuple) -> None:
    if any(isinstance(a, Tensor) and a.is_nested for a in args):
        raise NotImplementedError(
            "LiquidMemory does not take nested tensors. If nn.TransformerEncoder produced one, build it with "
            "enable_nested_tensor=False or use liquid_memory.nn.replace_attention(model), which turns it off."
        )
