"""Float64, token-by-token recomputation of a LiquidLM from its parameters (no code shared with the model).

The liquid mixer reuses the core suite's float64 LiquidMemory recomputation; everything else is written
out here as plainly as possible: loops over time, explicit softmax, explicit RoPE rotation.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

from tests.core.layer_reference import causal_depthwise, reference_layer


def rmsnorm(x: Tensor, weight: Tensor, eps: float) -> Tensor:
    return x / torch.sqrt(x.pow(2).mean(-1, keepdim=True) + eps) * weight.double()


def short_conv(x: Tensor, conv) -> Tensor:
    return causal_depthwise(x, conv.weight.double()[:, 0])


def liquidnet(x: Tensor, mixer) -> Tensor:
    lin = lambda layer, z: z @ layer.weight.double().T + (0 if layer.bias is None else layer.bias.double())  # noqa: E731
    alpha = torch.sigmoid(lin(mixer.alpha_proj, x))
    candidate = torch.tanh(lin(mixer.value_proj, x))
    gate = torch.sigmoid(lin(mixer.gate_proj, x))
    h = torch.zeros_like(x[:, 0])
    outputs = []
    for t in range(x.shape[1]):
        h = alpha[:, t] * h + (1 - alpha[:, t]) * candidate[:, t]
        outputs.append(gate[:, t] * h)
    return lin(mixer.out_proj, torch.stack(outputs, dim=1))


def attention(x: Tensor, mixer, rope_base: float) -> Tensor:
    batch, length, width = x.shape
    heads, d = mixer.n_heads, mixer.head_dim
    qkv = x @ mixer.qkv_proj.weight.double().T
    if mixer.qkv_proj.bias is not None:
        qkv = qkv + mixer.qkv_proj.bias.double()
    q, k, v = (t.view(batch, length, heads, d) for t in qkv.chunk(3, -1))
    half = d // 2

    def rotate(vec: Tensor, pos: int) -> Tensor:
        freq = rope_base ** (-2.0 * torch.arange(half, dtype=torch.float64) / d)
        c, s = torch.cos(pos * freq), torch.sin(pos * freq)
        a, b = vec[..., :half], vec[..., half:]
        return torch.cat([a * c - b * s, a * s + b * c], dim=-1)

    out = torch.zeros(batch, length, heads, d, dtype=torch.float64)
    for t in range(length):
        qt = rotate(q[:, t], t)
        scores = torch.stack([(qt * rotate(k[:, s], s)).sum(-1) for s in range(t + 1)], dim=-1) / math.sqrt(d)
        probs = torch.softmax(scores, dim=-1)  # [B, H, t+1]
        out[:, t] = torch.einsum("bhs,bshd->bhd", probs, v[:, : t + 1])
    y = out.reshape(batch, length, width) @ mixer.out_proj.weight.double().T
    return y if mixer.out_proj.bias is None else y + mixer.out_proj.bias.double()


def mixer_output(x: Tensor, block, config) -> Tensor:
    if config.mixer == "liquid" and config.conv_qkv:  # one short conv per q / k / v stream, then LiquidMemory
        q, k, v = (short_conv(x, block.mixer.convs[name]) for name in ("q_conv", "k_conv", "v_conv"))
        out, _ = reference_layer(block.mixer.memory, q, k, v, "causal")
        return out
    if config.mixer == "liquid":
        out, _ = reference_layer(block.mixer.memory, x, x, x, "causal")
        return out
    if config.mixer == "liquidnet":
        return liquidnet(x, block.mixer)
    return attention(x, block.mixer, config.rope_base)


def reference_logits(model, input_ids: Tensor) -> Tensor:
    """The whole model in float64: embeddings → blocks → final norm → tied head."""
    config = model.config
    scale = 1 / math.sqrt(2 * config.n_layers)
    x = model.embed.weight.double()[input_ids]
    for block in model.blocks:
        z = rmsnorm(x, block.mixer_norm.weight, config.norm_eps)
        if block.conv is not None:
            z = short_conv(z, block.conv)
        x = x + scale * mixer_output(z, block, config)
        z = rmsnorm(x, block.mlp_norm.weight, config.norm_eps)
        mlp = block.mlp
        hidden = F.silu(z @ mlp.gate.weight.double().T) * (z @ mlp.up.weight.double().T)
        x = x + scale * (hidden @ mlp.down.weight.double().T)
    x = rmsnorm(x, model.final_norm.weight, config.norm_eps)
    return x @ model.embed.weight.double().T
