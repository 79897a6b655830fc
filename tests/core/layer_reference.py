"""A float64, token-by-token recomputation of the layer's equations (docs/architecture.md §2) from its parameters.

Independent of the module's own code paths (no liquid_scan, no chunking): what the tests trust.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor


def _weights(module) -> tuple[Tensor, Tensor, Tensor]:
    if module._qkv_same_embed_dim:
        return tuple(w.double() for w in module.in_proj_weight.chunk(3))
    return module.q_proj_weight.double(), module.k_proj_weight.double(), module.v_proj_weight.double()


def reference_layer(module, query: Tensor, key: Tensor, value: Tensor, mode: str, padded: Tensor | None = None):
    """Batch-first float64 forward: returns (output [N, L, E], per-head o before norm [N, H, L, d])."""
    w_q, w_k, w_v = _weights(module)
    bias = module.in_proj_bias
    b_q, b_k, b_v = (b.double() for b in bias.chunk(3)) if bias is not None else (0.0, 0.0, 0.0)
    q = query.double() @ w_q.T + b_q
    k = key.double() @ w_k.T + b_k
    v = value.double() @ w_v.T + b_v
    delta = (
        torch.nn.functional.softplus(
            key.double() @ module.decay_proj.weight.double().T + module.decay_proj.bias.double()
        )
        + 1e-6
    )
    a = torch.exp(-delta)
    if getattr(module, "qkv_conv", None) is not None:  # short_conv: causal depthwise conv (+ SiLU) on q, k, v
        q = conv_stream(module.qkv_conv, q, 0, None if mode == "cross" else padded)
        k = conv_stream(module.qkv_conv, k, 1, padded)
        v = conv_stream(module.qkv_conv, v, 2, padded)
    if getattr(module, "qk_norm", False):  # per head: q_t/‖q_t‖, k_t/‖k_t‖
        heads = lambda x: x.view(*x.shape[:2], module.num_heads, module.head_dim)  # noqa: E731
        q = (heads(q) / heads(q).norm(dim=-1, keepdim=True).clamp_min(1e-6)).view(q.shape)
        k = (heads(k) / heads(k).norm(dim=-1, keepdim=True).clamp_min(1e-6)).view(k.shape)
    if module.coupled_input:
        k = (1 - a) * k
    if padded is not None:
        k = k.masked_fill(padded[..., None], 0.0)
        a = a.masked_fill(padded[..., None], 1.0)
    n, length, e = q.shape
    h, d = module.num_heads, module.head_dim
    source = k.shape[1]
    split = lambda x: x.view(n, x.shape[1], h, d)  # noqa: E731
    q, k, v, a = split(q), split(k), split(v), split(a)
    forward_states = []
    state = torch.zeros(n, h, d, d, dtype=torch.float64)
    for s in range(source):
        state = a[:, s, :, :, None] * state + k[:, s, :, :, None] * v[:, s, :, None, :]
        forward_states.append(state)
    o = torch.zeros(n, h, length, d, dtype=torch.float64)
    if mode == "cross":
        for t in range(length):
            o[:, :, t] = torch.einsum("nhd,nhde->nhe", q[:, t], forward_states[-1])
    else:
        backward_states = [torch.zeros(n, h, d, d, dtype=torch.float64)] * (source + 1)
        if mode == "bidirectional":
            state = torch.zeros(n, h, d, d, dtype=torch.float64)
            for s in range(source - 1, -1, -1):
                state = a[:, s, :, :, None] * state + k[:, s, :, :, None] * v[:, s, :, None, :]
                backward_states[s] = state
        for t in range(length):
            total = forward_states[t] + backward_states[t + 1]
            o[:, :, t] = torch.einsum("nhd,nhde->nhe", q[:, t], total)
    o = o / math.sqrt(d)
    normed = o
    if module.out_norm is not None:
        normed = o / torch.sqrt(o.pow(2).mean(-1, keepdim=True) + module.out_norm.eps)
        normed = normed * module.out_norm.weight.double().view(h, 1, d)
    merged = normed.transpose(1, 2).reshape(n, length, e)
    if getattr(module, "gate_proj", None) is not None:
        merged = merged * torch.sigmoid(query.double() @ module.gate_proj.weight.double().T)
    out = merged @ module.out_proj.weight.double().T
    if module.out_proj.bias is not None:
        out = out + module.out_proj.bias.double()
    return out, o


def conv_stream(conv, x: Tensor, stream: int, padded: Tensor | None) -> Tensor:
    """``y_t = act(Σ_j w[:, K-1-j] x_{t-j})`` per channel with the weight rows of ``stream`` (0 = q, 1 = k, 2 = v), the
    rows of padded positions zero first (they reach no later token); one explicit loop per output token and tap."""
    if padded is not None:
        x = x.masked_fill(padded[..., None], 0.0)
    width = x.shape[-1]
    y = causal_depthwise(x, conv.weight.double()[stream * width : (stream + 1) * width, 0])
    return y * torch.sigmoid(y) if conv.activation == "silu" else y


def causal_depthwise(x: Tensor, w: Tensor) -> Tensor:
    """``y_t = Σ_j w[:, K-1-j] x_{t-j}`` per channel (``x`` ``[B, T, C]``, ``w`` ``[C, K]``: tap K-1 multiplies the
    current row), one explicit loop per output token and tap."""
    kernel = w.shape[1]
    y = torch.zeros_like(x)
    for t in range(x.shape[1]):
        for j in range(kernel):
            if t - j >= 0:
                y[:, t] += w[:, kernel - 1 - j] * x[:, t - j]
    return y


def reference_weights(module, query: Tensor, key: Tensor, mode: str) -> Tensor:
    """Brute-force implicit attention [N, H, L, S] in float64 from explicit products of a_r."""
    w_q, w_k, _ = _weights(module)
    bias = module.in_proj_bias
    b_q, b_k = (bias.double().chunk(3)[:2]) if bias is not None else (0.0, 0.0)
    q = query.double() @ w_q.T + b_q
    k = key.double() @ w_k.T + b_k
    delta = (
        torch.nn.functional.softplus(
            key.double() @ module.decay_proj.weight.double().T + module.decay_proj.bias.double()
        )
        + 1e-6
    )
    a = torch.exp(-delta)
    if getattr(module, "qkv_conv", None) is not None:
        q, k = conv_stream(module.qkv_conv, q, 0, None), conv_stream(module.qkv_conv, k, 1, None)
    n, length, _ = q.shape
    source = k.shape[1]
    h, d = module.num_heads, module.head_dim
    q, k, a = q.view(n, length, h, d), k.view(n, source, h, d), a.view(n, source, h, d)
    weights = torch.zeros(n, h, length, source, dtype=torch.float64)
    for t in range(length):
        for s in range(source):
            if mode == "cross":
                decay = a[:, s + 1 :].prod(dim=1)
            elif s <= t:
                decay = a[:, s + 1 : t + 1].prod(dim=1)
            elif mode == "bidirectional":
                decay = a[:, t + 1 : s].prod(dim=1)
            else:
                continue
            weights[:, :, t, s] = (q[:, t] * decay * k[:, s]).sum(-1) / math.sqrt(d)
    return weights


def gradient_errors(module, names: tuple[str, ...], seed: int = 3, reference=None) -> dict[str, float]:
    """Relative error of each named parameter's gradient against the float64 recomputation (causal, a fixed
    random input and output weighting; ``reference`` defaults to :func:`reference_layer`); a gradient that is all
    zero or NaN counts as error ``inf``."""
    from tests.numerics import rel_err

    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(2, 23, module.embed_dim, generator=gen)
    target = torch.randn(2, 23, module.embed_dim, generator=gen)
    out, _ = module(x, x, x, is_causal=True, need_weights=False)
    (out * target).sum().backward()
    got = {name: p.grad.clone() for name, p in module.named_parameters()}
    module.zero_grad()
    expected, _ = (reference or reference_layer)(module, x, x, x, "causal")
    (expected * target.double()).sum().backward()
    errors = {}
    for name in names:
        bad = not got[name].abs().sum() > 0 or torch.isnan(got[name]).any()
        errors[name] = float("inf") if bad else rel_err(got[name], module.get_parameter(name).grad)
    return errors


def decode_error(module, seed: int = 5) -> float:
    """Relative error of prefill(8 tokens) + 4 ``step`` calls against one causal call over the 12 tokens."""
    from tests.numerics import rel_err

    module.eval()
    x = torch.randn(1, 12, module.embed_dim, generator=torch.Generator().manual_seed(seed))
    full, _ = module(x, x, x, is_causal=True, need_weights=False)
    module.reset_state()
    with torch.no_grad():
        head = module.prefill(x[:, :8])
        steps = [module.step(x[:, t]) for t in range(8, 12)]
    return rel_err(torch.cat([head, torch.stack(steps, dim=1)], dim=1), full)


def cross_inputs(seed: int = 2) -> tuple[Tensor, Tensor, Tensor]:
    """Batch-first query [2, 5, 32], key [2, 9, 16], value [2, 9, 24]: cross-attention with kdim 16, vdim 24."""
    gen = torch.Generator().manual_seed(seed)
    return (
        torch.randn(2, 5, 32, generator=gen),
        torch.randn(2, 9, 16, generator=gen),
        torch.randn(2, 9, 24, generator=gen),
    )


def reference_delta_layer(module, x: Tensor, key: Tensor, value: Tensor, mode: str = "causal", padded=None):
    """``delta_rule=True`` (causal only): float64 token-by-token recomputation from the module's parameters
    (independent of ops/delta.py); returns (output, None) like :func:`reference_layer`."""
    assert mode == "causal", "the delta rule is causal"
    h, d = module.num_heads, module.head_dim
    w_q, w_k, w_v = (w.double() for w in module.in_proj_weight.chunk(3))
    b_q, b_k, b_v = (b.double() for b in module.in_proj_bias.chunk(3))
    heads = lambda t: t.view(*t.shape[:2], h, d)  # noqa: E731
    q, k, v = x.double() @ w_q.T + b_q, key.double() @ w_k.T + b_k, value.double() @ w_v.T + b_v
    if module.qkv_conv is not None:  # short_conv: each stream convolved (padded rows zero) before the norms
        q, k, v = (conv_stream(module.qkv_conv, t, i, padded) for i, t in enumerate((q, k, v)))
    q, k, v = F.normalize(heads(q), dim=-1), F.normalize(heads(k), dim=-1), heads(v)
    dec = module.decay_proj
    a = heads(torch.exp(-(F.softplus(key.double() @ dec.weight.double().T + dec.bias.double()) + 1e-6)))
    beta = torch.sigmoid(key.double() @ module.beta_proj.weight.double().T + module.beta_proj.bias.double())
    if padded is not None:
        beta = beta.masked_fill(padded[..., None], 0.0)
        a = a.masked_fill(padded[..., None, None], 1.0)
    n, length = x.shape[:2]
    state, rows = torch.zeros(n, h, d, d, dtype=torch.float64), []
    for t in range(length):
        state = a[:, t, :, :, None] * state
        k_t, err = k[:, t], v[:, t] - torch.einsum("nhd,nhde->nhe", k[:, t], state)
        state = state + beta[:, t, :, None, None] * k_t[..., None] * err[..., None, :]
        rows.append(torch.einsum("nhd,nhde->nhe", q[:, t], state) / math.sqrt(d))
    o = torch.stack(rows, dim=2)
    normed = o / torch.sqrt(o.pow(2).mean(-1, keepdim=True) + module.out_norm.eps)
    merged = (normed * module.out_norm.weight.double().view(h, 1, d)).transpose(1, 2).reshape(n, length, h * d)
    if module.gate_proj is not None:
        merged = merged * torch.sigmoid(x.double() @ module.gate_proj.weight.double().T)
    return merged @ module.out_proj.weight.double().T + module.out_proj.bias.double(), None
