"""The models MQAR compares, by name, built at one width and depth.

Two stacks: ``lm`` (``liquid_memory.models.LiquidLM``, the default) and ``plain`` (``benchmarks/mqar/plain.py``:
embeddings + learned positions, the mixer as the only token mixer, each mixer with its own init — what a drop-in
user of ``LiquidMemory`` or ``nn.MultiheadAttention`` builds).

Adapter (kept here so ``models/`` stays untouched): MQAR scores a handful of answer positions per sequence,
so :func:`answer_logits` runs the trunk (embedding → blocks → final norm) and applies the tied output
head only at those positions. With Zoology's 8192-token vocabulary the full ``[B, T, V]`` head would cost more
than the rest of the model; the answer-position logits equal the full forward's (tested).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from benchmarks.mqar.adapters import apply_init
from benchmarks.mqar.data import MQARTask
from benchmarks.mqar.plain import PlainStack
from liquid_memory.models.short_conv import DEFAULT_KERNEL


@dataclass(frozen=True)
class ModelSpec:
    """A named model: LiquidLM mixer plus the config fields that distinguish it."""

    name: str
    mixer: str
    options: dict[str, Any] = field(default_factory=dict)
    note: str = ""
    init: str = "lm"  # "lm": LiquidLM's own init; else "+"-joined adapters (adapters.py)
    stack: str = "lm"  # "lm": LiquidLM; "plain": plain.py (options: n_heads, liquid_kwargs only)


CONV = {"short_conv": DEFAULT_KERNEL}
QKV_CONV = {"short_conv": DEFAULT_KERNEL, "conv_qkv": True}
EPS = {"liquid_kwargs": {"out_norm_eps": 1e-2}}
GATE_EPS = {"liquid_kwargs": {"output_gate": True, "out_norm_eps": 1e-2}}  # LiquidLM's best LM setting (lm bench)
# LiquidLM's recommended LiquidMemory options (models.RECOMMENDED_LIQUID_KWARGS), written out: a spec keeps its meaning.
RECOMMENDED = {"output_gate": True, "out_norm_eps": 1e-2, "qk_norm": True}


def _plain(name: str, note: str, **liquid_kwargs: Any) -> ModelSpec:
    """A plain-stack LiquidMemory spec with these module options (``short_conv`` always named: a spec keeps its meaning
    whatever the module's default)."""
    return ModelSpec(name, "liquid", {"liquid_kwargs": liquid_kwargs}, note, stack="plain")


MODEL_SPECS: dict[str, ModelSpec] = {
    spec.name: spec
    for spec in (
        ModelSpec("attention", "attention", {}, "softmax attention (SDPA, RoPE): the Transformer baseline"),
        ModelSpec("liquid", "liquid", {}, "LiquidMemory, defaults (uncoupled input, out_norm, full-rank decay)"),
        ModelSpec("liquid-conv", "liquid", CONV, "LiquidMemory + short causal conv on the mixer input"),
        ModelSpec("liquid-coupled", "liquid", {"coupled_input": True}, "ablation: seed's (1-a) coupled input"),
        ModelSpec("liquid-no-norm", "liquid", {"out_norm": False}, "ablation: no per-head output RMSNorm"),
        ModelSpec("liquid-r16", "liquid", {"liquid_kwargs": {"decay_rank": 16}}, "LiquidMemory, rank-16 decay"),
        ModelSpec("liquid-r64", "liquid", {"liquid_kwargs": {"decay_rank": 64}}, "LiquidMemory, rank-64 decay"),
        ModelSpec("liquidnet", "liquidnet", {}, "the seed LiquidNet's diagonal mixer (vector state)"),
        ModelSpec("liquid-xavier", "liquid", {}, "LiquidMemory, q/k/v xavier init (MHA's)", init="xavier"),
        # Why recall is slow (benchmarks/results/mqar/README.md): token shift, conv init, decay range and dependence.
        ModelSpec("liquid-qkvconv", "liquid", QKV_CONV, "LiquidMemory + one short conv per q/k/v stream"),
        ModelSpec("liquid-conv-u", "liquid", CONV, "liquid-conv, conv init uniform (fla's)", init="conv-uniform"),
        ModelSpec("liquid-qkvconv-u", "liquid", QKV_CONV, "liquid-qkvconv, conv init uniform", init="conv-uniform"),
        ModelSpec("liquid-qkvconv-slow", "liquid", QKV_CONV, "liquid-qkvconv, half-lives 32..4096", init="slow-decay"),
        ModelSpec(
            "liquid-qkvconv-u-slow",
            "liquid",
            QKV_CONV,
            "liquid-qkvconv, conv init uniform, half-lives 32..4096",
            init="conv-uniform+slow-decay",
        ),  # fmt: skip
        # One head: the same d_model with one head dimension d_model (LiquidMemory's state H·d² doubles at H=2 → 1).
        ModelSpec("attention-h1", "attention", {"n_heads": 1}, "softmax attention with one head"),
        ModelSpec(
            "liquid-qkvconv-u-h1",
            "liquid",
            {**QKV_CONV, "n_heads": 1},
            "liquid-qkvconv-u, one head",
            init="conv-uniform",
        ),  # fmt: skip
        ModelSpec(
            "liquid-qkvconv-u-slow-h1",
            "liquid",
            {**QKV_CONV, "n_heads": 1},
            "liquid-qkvconv-u-slow, one head",
            init="conv-uniform+slow-decay",
        ),  # fmt: skip
        # The read-out RMSNorm's eps 1e-2 instead of 1e-5 (bounds the gradient at near-zero read-outs,
        # the LM benchmark's gradient-spike fix: benchmarks/results/lm/grad_probe.txt); everything else as the spec
        # named before.
        ModelSpec("liquid-eps", "liquid", EPS, "LiquidMemory defaults, read-out norm eps 1e-2"),
        ModelSpec(
            "liquid-qkvconv-u-eps",
            "liquid",
            {**QKV_CONV, **EPS},
            "liquid-qkvconv-u, read-out norm eps 1e-2",
            init="conv-uniform",
        ),  # fmt: skip
        ModelSpec(
            "liquid-qkvconv-u-slow-eps",
            "liquid",
            {**QKV_CONV, **EPS},
            "liquid-qkvconv-u-slow, read-out norm eps 1e-2",
            init="conv-uniform+slow-decay",
        ),  # fmt: skip
        ModelSpec(
            "liquid-qkvconv-u-eps-h1",
            "liquid",
            {**QKV_CONV, **EPS, "n_heads": 1},
            "liquid-qkvconv-u-eps, one head",
            init="conv-uniform",
        ),  # fmt: skip
        # + LiquidMemory's sigmoid output gate on the read-out (σ(W_g x^q) ⊙ norm(o) before out_proj), the
        # LM benchmark's best setting with the eps (benchmarks/results/lm/seeds); otherwise each is the spec its note
        # names.
        ModelSpec(
            "liquid-qkvconv-u-gate",
            "liquid",
            {**QKV_CONV, "liquid_kwargs": {"output_gate": True}},
            "liquid-qkvconv-u + output gate (read-out norm eps 1e-5): the gate without the eps",
            init="conv-uniform",
        ),  # fmt: skip
        ModelSpec(
            "liquid-qkvconv-u-gate-eps",
            "liquid",
            {**QKV_CONV, **GATE_EPS},
            "liquid-qkvconv-u-eps + output gate",
            init="conv-uniform",
        ),  # fmt: skip
        ModelSpec(
            "liquid-qkvconv-u-slow-gate-eps",
            "liquid",
            {**QKV_CONV, **GATE_EPS},
            "liquid-qkvconv-u-slow-eps + output gate",
            init="conv-uniform+slow-decay",
        ),  # fmt: skip
        # + L2-normalised q and k per head (LiquidMemory's qk_norm, as DeltaNet / Gated DeltaNet), aimed at
        # the slow plateau escapes of seeds 1 and 3; otherwise the spec its note names.
        ModelSpec(
            "liquid-qkvconv-u-gate-eps-qkn",
            "liquid",
            {**QKV_CONV, "liquid_kwargs": {**GATE_EPS["liquid_kwargs"], "qk_norm": True}},
            "liquid-qkvconv-u-gate-eps + L2-normalised q, k per head (qk_norm)",
            init="conv-uniform",
        ),  # fmt: skip
        # + the gated delta rule (LiquidMemory's delta_rule, ops/delta.py; Gated DeltaNet's last ingredient).
        ModelSpec(
            "liquid-qkvconv-u-gate-eps-qkn-delta",
            "liquid",
            {**QKV_CONV, "liquid_kwargs": {**GATE_EPS["liquid_kwargs"], "qk_norm": True, "delta_rule": True}},
            "liquid-qkvconv-u-gate-eps-qkn + the gated delta rule (delta_rule)",
            init="conv-uniform",
        ),  # fmt: skip
        # The plain stack (plain.py): the module alone, as a drop-in user gets it; `-scK`: short_conv=K.
        ModelSpec("plain-attention", "attention", {}, "nn.MultiheadAttention in the plain stack", stack="plain"),
        _plain("plain-liquid", "LiquidMemory without short_conv (its other options at their defaults)", short_conv=0),
        _plain("plain-liquid-sc4", "LiquidMemory(short_conv=4): SiLU after the conv", short_conv=4),
        _plain(
            "plain-liquid-sc4-linear",
            "LiquidMemory(short_conv=4, short_conv_activation=None): no SiLU",
            short_conv=4,
            short_conv_activation=None,
        ),  # fmt: skip
        _plain(
            "plain-liquid-rec",
            "LiquidMemory(output_gate, out_norm_eps=1e-2, qk_norm): LiquidLM's options, without short_conv",
            **RECOMMENDED,
            short_conv=0,
        ),  # fmt: skip
        _plain("plain-liquid-rec-sc4", "plain-liquid-rec + short_conv=4", **RECOMMENDED, short_conv=4),
        ModelSpec("liquid-static", "liquid", {}, "LiquidMemory, decay W_δ = 0 frozen (bias only)", init="static-decay"),
        ModelSpec("liquid-conv-static", "liquid", CONV, "liquid-conv, W_δ = 0 frozen", init="static-decay"),
        ModelSpec("liquid-qkvconv-static", "liquid", QKV_CONV, "liquid-qkvconv, W_δ = 0 frozen", init="static-decay"),
    )
}


@dataclass(frozen=True)
class ModelShape:
    """Width and depth shared by every model of a comparison."""

    d_model: int = 128
    n_layers: int = 2
    n_heads: int = 2
    backend: str | None = None  # liquid_scan backend for the liquid mixer (None: LM_BACKEND or the default)


def heads_of(spec: ModelSpec, shape: ModelShape) -> int:
    """The head count ``spec`` is built with: its own ``n_heads`` option (the ``-h1`` specs) or the shared shape's."""
    return int(spec.options.get("n_heads", shape.n_heads))


def parse_models(names: str) -> list[ModelSpec]:
    """``"attention,liquid"`` → specs; an unknown name is a ``ValueError`` listing the known ones."""
    specs = []
    for raw in names.split(","):
        name = raw.strip()
        if not name:
            continue
        if name not in MODEL_SPECS:
            raise ValueError(f"unknown model {name!r}; choose from {', '.join(MODEL_SPECS)}")
        specs.append(MODEL_SPECS[name])
    if not specs:
        raise ValueError("no models given")
    return specs


def build_model(spec: ModelSpec, shape: ModelShape, task: MQARTask, seed: int) -> nn.Module:
    """A freshly initialised LiquidLM for ``spec`` (``torch.manual_seed(seed)`` first, so inits are fixed)."""
    from liquid_memory.models import LiquidLM, LiquidLMConfig

    torch.manual_seed(seed)
    if spec.stack == "plain":
        unknown = set(spec.options) - {"n_heads", "liquid_kwargs"}
        if unknown or spec.init != "lm":
            raise ValueError(
                f"plain-stack spec {spec.name!r}: options {sorted(unknown)} / init {spec.init!r} unsupported"
            )
        return PlainStack(
            task.vocab_size, task.seq_len, shape.d_model, shape.n_layers, heads_of(spec, shape), spec.mixer,
            spec.options.get("liquid_kwargs"), backend=shape.backend,
        )  # fmt: skip
    fields = {"vocab_size": task.vocab_size, "d_model": shape.d_model, "n_layers": shape.n_layers,
              "n_heads": shape.n_heads, "max_seq_len": task.seq_len, "backend": shape.backend}  # fmt: skip
    config = LiquidLMConfig(mixer=spec.mixer, **{**fields, **spec.options})  # a spec may override n_heads
    model = LiquidLM(config)
    apply_init(model, spec.init)
    return model


def hidden_states(model: nn.Module, input_ids: Tensor) -> Tensor:
    """LiquidLM's (or the plain stack's) final-norm output ``[B, T, E]`` for a whole sequence (training form)."""
    if isinstance(model, PlainStack):
        return model.hidden_states(input_ids)
    x = model.embed(input_ids)
    for block in model.blocks:
        x, _ = block(x, None, False)
    return model.final_norm(x)


def answer_logits(model: nn.Module, input_ids: Tensor, mask: Tensor) -> Tensor:
    """Logits ``[N, V]`` at the ``N`` positions where ``mask`` is True (row-major order), tied head."""
    hidden = hidden_states(model, input_ids)
    return F.linear(hidden[mask], model.embed.weight)


def state_size(model: nn.Module, seq_len: int) -> int:
    """Floats of decode state after ``seq_len`` tokens of one sequence, summed over layers (Zoology's measure).

    Measured, not computed from a formula: run one sequence with ``use_cache`` and count the state's elements
    (attention: the KV cache, ``2·E·T`` per layer; LiquidMemory: ``H·d·d`` per layer; plus any conv window).
    """
    if isinstance(model, PlainStack):
        return model.state_floats(seq_len)
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            ids = torch.zeros(1, seq_len, dtype=torch.long)
            _, state = model(ids, use_cache=True)
    finally:
        model.train(was_training)
    total = 0
    for layer in state.layers:
        for value in (layer.conv, layer.mixer):
            tensors = value.values() if isinstance(value, dict) else [value]
            total += sum(t.numel() for t in tensors if isinstance(t, Tensor))
    return total
