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
scaled per token. int8 decode rows also run fewer, longer matmuls: a patched attention's ``q``, ``k``, ``v`` rows
are one ``Int8Linear`` (``qkv_proj``) and the MLP's ``gate`` and ``up`` rows another (``FusedGateUpMLP``) — the
same numbers, since each output row has its own scale — and the model's RMSNorms become one torch call each
(``OneOpRMSNorm``): a decode token of SmolLM2 made 211 int8 matmul calls and ran 61 six-op norms before.
Quality: ``liquid-memory bench --hf`` / the serving benchmark report held-out perplexity
per format.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from liquid_memory.hf.errors import PatchError
from liquid_memory.hf.patch import patched_layers
from liquid_memory.ops.dispatch import int8_linear_kernel
from liquid_memory.ops.licence_hold import hold_per_forward

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
    def from_parts(
        cls, qweight: Tensor, scale: Tensor, backend: str | None = None, bias: Tensor | None = None
    ) -> Int8Linear:
        """An ``Int8Linear`` sharing already quantised rows (the tied LM head and embedding, fused rows)."""
        module = cls.__new__(cls)
        nn.Module.__init__(module)
        module.backend = backend
        module.out_features, module.in_features = qweight.shape
        module.register_buffer("qweight", qweight)
        module.register_buffer("scale", scale)
        module.bias = None if bias is None else nn.Parameter(bias, requires_grad=False)
        return module

    def few_rows(self, x: Tensor) -> bool:
        """Whether ``x`` (``[..., in_features]``) has at most ``SMALL_BATCH_ROWS`` rows: a decode-sized call, which
        runs the int8 GEMV (and fused rows fused); more rows run a GEMM per matrix."""
        return x.numel() <= SMALL_BATCH_ROWS * self.in_features

    def dequantized(self) -> Tensor:
        """The weight as the kernel sees it, ``q · scale`` in bf16 ``[N, K]``."""
        return self.qweight.to(torch.bfloat16) * self.scale[:, None]

    def forward(self, x: Tensor) -> Tensor:
        rows = x.reshape(-1, self.in_features)
        if self.few_rows(x):
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

    ``fp32`` leaves the model unchanged. The liquid parameters a patch added stay as they are; the norms keep their
    weights and run as one torch call each (``OneOpRMSNorm``).
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
    if weights == "int8":
        fuse_int8_rows(model)
    one_op_norms(model)
    model.liquid_weights = weights
    return hold_per_forward(model)


def fuse_rows(parts: list[Int8Linear]) -> tuple[Int8Linear, list[Int8Linear]] | None:
    """One ``Int8Linear`` over the rows of ``parts`` (same input), and each part again as a view of its rows.

    int8 scales are per output row, so a fused row is the very row it was: the same numbers, one matmul (one call,
    one licence lookup, one longer stream through the weights). ``None`` when the parts cannot share a matmul
    (other inputs, a bias on some only)."""
    if len({p.in_features for p in parts}) != 1 or len({p.bias is None for p in parts}) != 1:
        return None
    backend = parts[0].backend
    qweight = torch.cat([p.qweight for p in parts]).contiguous()
    scale = torch.cat([p.scale for p in parts]).contiguous()
    bias = None if parts[0].bias is None else torch.cat([p.bias.detach() for p in parts])
    fused = Int8Linear.from_parts(qweight, scale, backend, bias)
    views, start = [], 0
    for p in parts:
        end = start + p.out_features
        part_bias = None if bias is None else fused.bias.detach()[start:end]
        views.append(Int8Linear.from_parts(qweight[start:end], scale[start:end], backend, part_bias))
        start = end
    return fused, views


class FusedGateUpMLP(nn.Module):
    """A gated MLP (Llama / Mistral / Qwen2: ``down(act(gate(x)) · up(x))``) whose int8 ``gate`` and ``up`` rows
    are one matmul. ``gate_proj`` / ``up_proj`` stay as views of the fused rows: ``reference_forward`` runs the
    unfused original (the tests compare the two)."""

    def __init__(self, mlp: nn.Module, fused: Int8Linear, gate: Int8Linear, up: Int8Linear) -> None:
        super().__init__()
        self.gate_up_proj, self.gate_proj, self.up_proj, self.down_proj = fused, gate, up, mlp.down_proj
        self.act_fn, self.intermediate = mlp.act_fn, gate.out_features

    def forward(self, x: Tensor) -> Tensor:
        if not self.gate_up_proj.few_rows(x):  # prefill: a GEMM per matrix, as unfused
            return self.reference_forward(x)
        gate, up = self.gate_up_proj(x).split(self.intermediate, dim=-1)
        return self.down_proj(self.act_fn(gate) * up)

    def reference_forward(self, x: Tensor) -> Tensor:
        return self.down_proj(self.act_fn(self.gate_proj(x)) * self.up_proj(x))


def fuse_int8_rows(model: Any) -> None:
    """In every decoder layer: one int8 matmul for the patched attention's ``q``, ``k``, ``v`` (its ``qkv_proj``,
    read by ``LiquidHybridAttention._project``; an unpatched attention keeps its own three) and one for the MLP's
    ``gate`` and ``up`` (``FusedGateUpMLP``). The separate modules stay as views of the fused rows (no copy)."""
    for layer in patched_layers(model):
        parts = [layer.q_proj, layer.k_proj, layer.v_proj]
        fused = fuse_rows(parts) if all(isinstance(p, Int8Linear) for p in parts) else None
        if fused is not None:
            layer.qkv_proj, (layer.q_proj, layer.k_proj, layer.v_proj) = fused
    for decoder in model.model.layers:
        mlp = decoder.mlp
        parts = [getattr(mlp, "gate_proj", None), getattr(mlp, "up_proj", None)]
        if isinstance(mlp, FusedGateUpMLP) or not all(isinstance(p, Int8Linear) for p in parts):
            continue
        fused = fuse_rows(parts)
        if fused is not None:
            decoder.mlp = FusedGateUpMLP(mlp, fused[0], *fused[1])


def weight_bytes(model: Any) -> int:
    """Bytes of every parameter and buffer (each storage once: a tied table counts once)."""
    seen, total = set(), 0
    for tensor in list(model.parameters()) + list(model.buffers()):
        key = tensor.untyped_storage().data_ptr()
        if key not in seen:
            seen.add(key)
            total += tensor.untyped_storage().nbytes()
    return total


_NORMS = ("LlamaRMSNorm", "MistralRMSNorm", "Qwen2RMSNorm")  # one formula, HF's ``LlamaRMSNorm.forward``


class OneOpRMSNorm(nn.Module):
    """The model's RMSNorm, ``w · x · rsqrt(mean(x²) + eps)``, as torch's ``rms_norm`` (one call instead of six
    tensor ops: a decode token runs 61 of them) for fp32 inference; the same numbers as ``reference_forward`` (HF's
    formula, which runs otherwise)."""

    def __init__(self, norm: nn.Module) -> None:
        super().__init__()
        self.weight, self.variance_epsilon = norm.weight, norm.variance_epsilon

    def forward(self, x: Tensor) -> Tensor:
        if x.dtype == torch.float32 and self.weight.dtype == torch.float32 and not torch.is_grad_enabled():
            return nn.functional.rms_norm(x, self.weight.shape, self.weight, self.variance_epsilon)
        return self.reference_forward(x)

    def reference_forward(self, x: Tensor) -> Tensor:
        h = x.to(torch.float32)
        h = h * torch.rsqrt(h.pow(2).mean(-1, keepdim=True) + self.variance_epsilon)
        return self.weight * h.to(x.dtype)

    def extra_repr(self) -> str:
        return f"{tuple(self.weight.shape)}, eps={self.variance_epsilon}"


def one_op_norms(model: Any) -> None:
    """Every decoder layer's two RMSNorms and the final one as ``OneOpRMSNorm`` (the weights shared, not copied)."""
    inner = model.model
    for parent, name in [(d, n) for d in inner.layers for n in ("input_layernorm", "post_attention_layernorm")] + [
        (inner, "norm")
    ]:
        norm = getattr(parent, name, None)
        if type(norm).__name__ in _NORMS:
            setattr(parent, name, OneOpRMSNorm(norm))
