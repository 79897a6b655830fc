"""Weight formats for serving a Hugging Face causal LM (original or patched): ``fp32``, ``bf16``, ``int8``.

A decode step reads every weight once per token, so at batch 1 its time is mostly bytes: SmolLM2-135M holds
538 MB of fp32 weights, 269 MB in bf16 and ≈ 136 MB in int8. ``convert_weights`` swaps each ``nn.Linear`` of
the decoder layers, the LM head and the (tied) token embedding for a module that stores the weight in the
chosen format; activations, norms, the residual stream and the liquid parameters stay as they are (fp32).
``int8`` is weight-only and symmetric per output channel (scale = max|w| / 127 rounded up to bf16, no zero
point). Its matmul for up to ``SMALL_BATCH_ROWS`` rows — decode — is the licensed C++ op ``int8_linear``
(``ops/cpp.py``: each int8 row widened to fp32 in registers against the fp32 activations, fp32 accumulation, no
bf16 round trip of the input or output); with the pure-PyTorch backend (``backend="reference"``, or the
backend of the patched layers), and under ``torch.compile`` or autograd, torch's weight-packed int8 GEMV
(``torch._weight_int8pack_mm``, the one gpt-fast uses on CPU) on bf16 activations. More rows (prefill) run a
bf16 GEMM of the dequantised weight: a GEMV kernel is slower than GEMM there. torchao (0.18) was tried first:
its eager int8 weight-only linear converts the whole int8 weight to the activation dtype on every call and ran
slower than fp32; its int4 CPU layout needs torchao's own kernels.

The LM head's int8 rows double as the embedding table (the model ties them): one int8 copy, gathered and
scaled per token. Quality: ``liquid-memory bench --hf`` / the serving benchmark report held-out perplexity
per format.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from liquid_memory.hf.errors import PatchError
from liquid_memory.hf.patch import patched_layers
from liquid_memory.ops.dispatch import int8_linear_kernel

WEIGHT_FORMATS = ("fp32", "bf16", "int8")
SMALL_BATCH_ROWS = 16  # at most this many rows: an int8 GEMV kernel; more: bf16 GEMM of the dequantised weight
_KERNEL_DTYPES = (torch.float32, torch.bfloat16)  # what the C++ op takes; others go through torch's kernel


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
    """``nn.Linear`` with a weight-only int8 weight (see the module docstring); output in the input's dtype.

    ``backend``: as ``liquid_scan``'s (``None``: ``LM_BACKEND``, else the licensed ``cpp`` op on a CPU)."""

    def __init__(self, linear: nn.Linear, backend: str | None = None) -> None:
        super().__init__()
        self.backend = backend
        self.in_features, self.out_features = linear.in_features, linear.out_features
        q, scale = quantize_int8(linear.weight)
        self.register_buffer("qweight", q)
        self.register_buffer("scale", scale)
        self.bias = None if linear.bias is None else nn.Parameter(linear.bias.detach().float(), requires_grad=False)

    @classmethod
    def from_parts(cls, qweight: Tensor, scale: Tensor, backend: str | None = None) -> Int8Linear:
        """An ``Int8Linear`` sharing already quantised rows (the tied LM head and embedding)."""
        module = cls.__new__(cls)
        nn.Module.__init__(module)
        module.backend = backend
        module.out_features, module.in_features = qweight.shape
        module.register_buffer("qweight", qweight)
        module.register_buffer("scale", scale)
        module.bias = None
        return module

    def dequantized(self) -> Tensor:
        """The weight as the kernel sees it, ``q · scale`` in bf16 ``[N, K]``."""
        return self.qweight.to(torch.bfloat16) * self.scale[:, None]

    def forward(self, x: Tensor) -> Tensor:
        rows = x.reshape(-1, self.in_features)
        if rows.shape[0] <= SMALL_BATCH_ROWS:
            kernel = int8_linear_kernel(self.backend, device_type=x.device.type)
            if kernel is not None and x.dtype in _KERNEL_DTYPES:
                return kernel(rows, self.qweight, self.scale, self.bias).view(*x.shape[:-1], self.out_features)
            y = torch._weight_int8pack_mm(rows.to(torch.bfloat16), self.qweight, self.scale)
        else:
            y = nn.functional.linear(rows.to(torch.bfloat16), self.dequantized())
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


def _convert(linear: nn.Linear, weights: str, backend: str | None) -> nn.Module:
    return Int8Linear(linear, backend) if weights == "int8" else Bf16Linear(linear)


def _patched_backend(model: Any) -> str | None:
    """The ``backend`` a patch gave the attention layers (``None`` for an unpatched model or the default)."""
    return next((layer.backend for layer in patched_layers(model)), None)


@torch.no_grad()
def convert_weights(model: Any, weights: str, *, backend: str | None = None) -> Any:
    """Store the decoder layers' linear weights, the LM head and the tied embedding in ``weights`` (in place).

    ``fp32`` leaves the model unchanged. The liquid parameters a patch added and the norms are not touched.
    ``backend``: the int8 matmul's (``Int8Linear``), by default the one the patched attention layers run on.
    For inference only (the converted weights take no gradient). Returns the same model object."""
    check_format(weights)
    if weights == "fp32":
        return model
    backend = backend if backend is not None else _patched_backend(model)
    inner = model.model
    for layer in inner.layers:
        for parent in (layer.self_attn, layer.mlp):
            for name, child in list(parent.named_children()):
                if isinstance(child, nn.Linear):
                    setattr(parent, name, _convert(child, weights, backend))
    tied = model.lm_head.weight is inner.embed_tokens.weight
    model.lm_head = _convert(model.lm_head, weights, backend)
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
