"""The LiquidMemory options the option matrix checks (test_layer_options.py): one row per option, each with a
module whose option visibly changes the output, the float64 reference that must match it, and what it is
compared against to prove the reference really applies the option."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import torch
from torch import Tensor

from liquid_memory import LiquidMemory
from tests.core.layer_reference import reference_delta_layer, reference_layer


@dataclass(frozen=True)
class LayerOption:
    name: str
    make: Callable[..., LiquidMemory]  # (backend, **module kwargs) -> the module with the option on
    grads: tuple[str, ...]  # parameters whose gradients are checked against the reference
    reference: Callable = reference_layer
    modes: tuple[str, ...] = ("causal", "bidirectional")
    cross: bool = True  # also checked as cross-attention with kdim 16, vdim 24
    input_scale: float = 1.0
    # (module, x, mode) -> the output without the option, which must differ from the reference by > ``differs``
    without: Callable[[LiquidMemory, Tensor, str], Tensor] | None = None
    differs: float = 0.0
    kwargs: dict = field(default_factory=dict)


def low_rank(backend: str, rank: int = 3, **kwargs) -> LiquidMemory:
    torch.manual_seed(0)
    module = LiquidMemory(32, 4, batch_first=True, backend=backend, decay_rank=rank, **kwargs)
    with torch.no_grad():  # a decay the test can see: U·V entries well away from zero
        module.decay_proj.down.weight.normal_(0, 0.5)
        module.decay_proj.up.weight.normal_(0, 0.5)
        module.out_norm.weight.uniform_(0.5, 1.5)
    return module


def gated(backend: str, **kwargs) -> LiquidMemory:
    torch.manual_seed(0)
    module = LiquidMemory(32, 4, batch_first=True, backend=backend, output_gate=True, **kwargs)
    with torch.no_grad():  # a gate the test can see: far from σ(0) = 1/2 everywhere
        module.gate_proj.weight.normal_(0, 0.5)
        module.out_norm.weight.uniform_(0.5, 1.5)
    return module


def qk_normalised(backend: str, **kwargs) -> LiquidMemory:
    torch.manual_seed(0)
    module = LiquidMemory(32, 4, batch_first=True, backend=backend, qk_norm=True, **kwargs)
    with torch.no_grad():  # q/k norms far from 1, so the normalisation changes the output
        for weight in (module.in_proj_weight, module.q_proj_weight, module.k_proj_weight):
            if weight is not None:
                weight.mul_(3.0)
    return module


def with_eps(backend: str, eps: float = 1e-2, **kwargs) -> LiquidMemory:
    torch.manual_seed(0)
    return LiquidMemory(32, 4, batch_first=True, backend=backend, out_norm_eps=eps, **kwargs)


def convolved(backend: str, activation: str | None = "silu", **kwargs) -> LiquidMemory:
    torch.manual_seed(0)
    return LiquidMemory(
        32, 4, batch_first=True, backend=backend, short_conv=4, short_conv_activation=activation, **kwargs
    )


def delta_module(backend: str = "chunked", **kwargs) -> LiquidMemory:
    """Whatever ``backend`` names, the delta rule runs its PyTorch path; the recurrence alone (``short_conv=0``)
    unless ``kwargs`` name the convolution."""
    torch.manual_seed(0)
    kwargs = {"short_conv": 0, **kwargs}
    module = LiquidMemory(16, 2, batch_first=True, backend=backend, qk_norm=True, delta_rule=True, **kwargs)
    with torch.no_grad():  # β away from ½ and input-dependent; out_proj bias non-zero
        module.beta_proj.weight.normal_(0.0, 0.5)
        module.beta_proj.bias.normal_(0.0, 1.0)
    return module


def _ungated(module: LiquidMemory, x: Tensor, mode: str) -> Tensor:
    return reference_layer(LiquidMemory(32, 4, batch_first=True), x, x, x, mode)[0]


@contextmanager
def _temporarily(owner: object, name: str, value: object) -> Iterator[None]:
    """``owner.name = value`` for the block, then the old value back (a submodule keeps its place)."""
    before = getattr(owner, name)
    setattr(owner, name, value)
    try:
        yield
    finally:
        setattr(owner, name, before)


def _not_normalised(module: LiquidMemory, x: Tensor, mode: str) -> Tensor:
    with _temporarily(module, "qk_norm", False):
        return reference_layer(module, x, x, x, mode)[0]


def _default_eps(module: LiquidMemory, x: Tensor, mode: str) -> Tensor:
    return reference_layer(with_eps("chunked", 1e-5), x, x, x, mode)[0]


def _without_conv(module: LiquidMemory, x: Tensor, mode: str) -> Tensor:
    with _temporarily(module, "qkv_conv", None):
        return reference_layer(module, x, x, x, mode)[0]


def _with_silu(module: LiquidMemory, x: Tensor, mode: str) -> Tensor:
    with _temporarily(module.qkv_conv, "activation", "silu"):
        return reference_layer(module, x, x, x, mode)[0]


def _without_delta(module: LiquidMemory, x: Tensor, mode: str) -> Tensor:
    """The same parameters without the delta rule (the plain liquid recurrence) give another output."""
    beta_proj, backend = module.beta_proj, module.backend
    module.delta_rule, module.beta_proj, module.backend = False, None, "chunked"
    try:
        with torch.no_grad():
            return module(x, x, x, is_causal=True, need_weights=False)[0]
    finally:
        module.delta_rule, module.beta_proj, module.backend = True, beta_proj, backend


CONV_GRADS = ("in_proj_weight", "in_proj_bias", "qkv_conv.weight", "decay_proj.weight", "out_norm.weight")
OPTIONS = [
    LayerOption(
        "decay_rank", low_rank,
        grads=("decay_proj.down.weight", "decay_proj.up.weight", "decay_proj.up.bias", "in_proj_weight"),
        kwargs={"rank": 5},
    ),
    LayerOption(
        "output_gate", gated, grads=("gate_proj.weight", "in_proj_weight", "decay_proj.weight", "out_norm.weight"),
        without=_ungated, differs=0.1,
    ),
    LayerOption(
        "qk_norm", qk_normalised, grads=("in_proj_weight", "decay_proj.weight", "out_norm.weight"),
        without=_not_normalised, differs=0.05,
    ),
    LayerOption(  # read-outs of the order of sqrt(eps), so eps visibly changes the output
        "out_norm_eps", with_eps, grads=("in_proj_weight", "decay_proj.weight", "out_norm.weight"), cross=False,
        input_scale=0.05, without=_default_eps, differs=0.05,
    ),
    LayerOption(
        "delta_rule", lambda backend, **kw: delta_module(backend, output_gate=True, **kw),
        grads=("in_proj_weight", "decay_proj.weight", "beta_proj.weight", "beta_proj.bias", "out_norm.weight"),
        reference=reference_delta_layer, modes=("causal",), cross=False, without=_without_delta, differs=0.05,
    ),
    LayerOption("short_conv", convolved, grads=CONV_GRADS, without=_without_conv, differs=0.05),
    LayerOption(
        "short_conv_activation", lambda backend, **kw: convolved(backend, activation=None, **kw), grads=CONV_GRADS,
        without=_with_silu, differs=0.05,
    ),
]  # fmt: skip
