"""Weight formats for serving a Hugging Face causal LM (original or patched): ``fp32``, ``bf16``, ``int8``.

A decode step reads every weight once per token, so at batch 1 its time is mostly bytes: SmolLM2-135M holds
538 MB of fp32 weights, 269 MB in bf16 and ≈ 136 MB in int8. ``convert_weights`` swaps each ``nn.Linear`` of
the decoder layers, the LM head and the (tied) token embedding for a module that stores the weight in the
chosen format; activations, norms, the residual stream and the liquid parameters stay as they are (fp32),
each matmul converts its input. ``int8`` is weight-only and symmetric per output channel (scale = max|w| /
127, no zero point); its matmul is torch's CPU weight-packed int8 kernel (``torch._weight_int8pack_mm``, the
GEMV gpt-fast uses on CPU) for up to ``SMALL_BATCH_ROWS`` rows — decode — and a bf16 GEMM of the
dequantised weight for more rows (prefill: the int8 kernel is a GEMV, slower than bf16 GEMM there). Both
run on bf16 activations (the int8 kernel takes bf16 or fp32 inputs, and its fp32 path measured 8–16× slower
here). torchao (0.18) was tried first: its eager int8 weight-only linear converts the whole int8 weight to the
activation dtype on every call and ran slower than fp32; its int4 CPU layout needs torchao's own kernels.

The LM head's int8 rows double as the embedding table (the model ties them): one int8 copy, gathered and
scaled per token. Quality: ``liquid-memory bench --hf`` / the serving benchmark report held-out perplexity
per format.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from liquid_memory.hf.errors import PatchError

WEIGHT_FORMATS = ("fp32", "bf16", "int8")
SMALL_BATCH_ROWS = 16  # at most this many rows: the int8 GEMV kernel; more: bf16 GEMM of the dequantised weight


def check_format(weights: str) -> None:
    """``PatchError`` (LM703) unless ``weights`` is one of ``WEIGHT_FORMATS``."""
    if weights not in WEIGHT_FORMATS:
        raise PatchError(f"unknown weight format {weights!r}", remedy=f"use one of {', '.join(WEIGHT_FORMATS)}")


def quantize_int8(weight: Tensor) -> tuple[Tensor, Tensor]:
    """``(q int8 [N, K], scale bf16 [N])`` with ``w ≈ q · scale`` per row (the scale is rounded up to bf16 first,
    so ``|w| / scale ≤ 127`` and the kernel's bf16 scale is the one the rows were rounded with)."""
    w = weight.detach().float()
    scale = (w.abs().amax(dim=1) / 127.0).clamp_min(1e-12)
    scale = (scale * (1.0 + 2.0**-7)).to(torch.bfloat16)  # ≥ the fp32 scale after bf16 rounding
    q = torch.round(w / scale.float()[:, None]).clamp_(-127, 127).to(torch.int8)
    return q.contiguous(), scale


class Int8Linear(nn.Module):
    """``nn.Linear`` with a weight-only int8 weight (see the module docstring); output in the input's dtype."""

    def __init__(self, linear: nn.Linear) -> None:
        super().__init__()
        self.in_features, self.out_features = linear.in_features, linear.out_features
        q, scale = quantize_int8(linear.weight)
        self.register_buffer("qweight", q)
        self.register_buffer("scale", scale)
        self.bias = None if linear.bias is None else nn.Parameter(linear.bias.detach().float(), requires_grad=False)

    @classmethod
    def from_parts(cls, qweight: Tensor, scale: Tensor) -> Int8Linear:
        """An ``Int8Linear`` sharing already quantised rows (the tied LM head and embedding)."""
        module = cls.__new__(cls)
        nn.Module.__init__(module)
        module.out_features, module.in_features = qweight.shape
        module.register_buffer("qweight", qweight)
        module.register_buffer("scale", scale)
        module.bias = None
        return module

    def dequantized(self) -> Tensor:
        """The weight as the kernel sees it, ``q · scale`` in bf16 ``[N, K]``."""
        return self.qweight.to(torch.bfloat16) * self.scale[:, None]

    def forward(self, x: Tensor) -> Tensor:
        rows = x.reshape(-1, self.in_features).to(torch.bfloat16)
        if rows.shape[0] <= SMALL_BATCH_ROWS:
            y = torch._weight_int8pack_mm(rows, self.qweight, self.scale)
        else:
            y = nn.functional.linear(rows, self.dequantized())
        y = y.to(x.dtype).view(*x.shape[:-1], self.out_features)
        return y if self.bias is None else y + self.bias.to(x.dtype)

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, weights=int8"


class Bf16Linear(nn.Module):
    """``nn.Linear`` with its weight stored in bf16 (the bf16 GEMV/GEMM); output in the input's dtype."""

    def __init__(self, linear: nn.Linear) -> None:
        super().__init__()
        self.in_features, self.out_features = linear.in_features, linear.out_features
        self.weight = nn.Parameter(linear.weight.detach().to(torch.bfloat16), requires_grad=False)
        self.bias = None if linear.bias is None else nn.Parameter(linear.bias.detach().float(), requires_grad=False)

    def forward(self, x: Tensor) -> Tensor:
        y = nn.functional.linear(x.to(torch.bfloat16), self.weight).to(x.dtype)
        return y if self.bias is None else y + self.bias.to(x.dtype)

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, weights=bf16"


class RowTableEmbedding(nn.Module):
    """A token embedding read from a converted LM head's rows (int8 + scale, or bf16); output fp32."""

    def __init__(self, head: Int8Linear | Bf16Linear, padding_idx: int | None) -> None:
        super().__init__()
        self.head, self.padding_idx = head, padding_idx  # the head owns the table: one copy

    def forward(self, ids: Tensor) -> Tensor:
        if isinstance(self.head, Int8Linear):
            return self.head.qweight[ids].float() * self.head.scale[ids, None].float()
        return self.head.weight[ids].float()


def _convert(linear: nn.Linear, weights: str) -> nn.Module:
    return Int8Linear(linear) if weights == "int8" else Bf16Linear(linear)


@torch.no_grad()
def convert_weights(model: Any, weights: str) -> Any:
    """Store the decoder layers' linear weights, the LM head and the tied embedding in ``weights`` (in place).

    ``fp32`` leaves the model unchanged. The liquid parameters a patch added and the norms are not touched.
    For inference only (the converted weights take no gradient). Returns the same model object."""
    check_format(weights)
    if weights == "fp32":
        return model
    inner = model.model
    for layer in inner.layers:
        for parent in (layer.self_attn, layer.mlp):
            for name, child in list(parent.named_children()):
                if isinstance(child, nn.Linear):
                    setattr(parent, name, _convert(child, weights))
    tied = model.lm_head.weight is inner.embed_tokens.weight
    model.lm_head = _convert(model.lm_head, weights)
    if tied:
        inner.embed_tokens = RowTableEmbedding(model.lm_head, inner.embed_tokens.padding_idx)
    model.liquid_weights = weights
    return model


def weight_bytes(model: Any) -> int:
    """Bytes of every parameter and buffer (each storage once: a tied table counts once)."""
    seen, total = set(), 0
    for tensor in list(model.parameters()) + list(model.buffers()):
        key = tensor.untyped_storage().data_ptr()
        if key not in seen:
            seen.add(key)
            total += tensor.untyped_storage().nbytes()
    return total
