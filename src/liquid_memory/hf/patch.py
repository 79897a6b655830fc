"""``patch_model``: put ``LiquidHybridAttention`` into every decoder layer of a Llama / Mistral / Qwen2 model."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from torch import nn

from liquid_memory.hf.attention import MODES, LiquidHybridAttention, set_global_cache
from liquid_memory.hf.errors import SUPPORTED, UnsupportedArchitecture
from liquid_memory.hf.global_cache import DEFAULT_BLOCK, ImportanceBoard
from liquid_memory.ops.licence_hold import hold_per_forward


def _check_architecture(model: Any) -> None:
    from transformers import LlamaForCausalLM, MistralForCausalLM, Qwen2ForCausalLM

    if not isinstance(model, LlamaForCausalLM | MistralForCausalLM | Qwen2ForCausalLM):
        raise UnsupportedArchitecture(f"cannot patch {type(model).__name__}: supported are {', '.join(SUPPORTED)}")


def patch_model(
    model: Any, *, window: int = 64, backend: str | None = None, sinks: int = 0, max_half_life: float | None = None,
    global_cache: int = 0, cache_block: int = DEFAULT_BLOCK, cache_score: str = "attention",
    per_query_mix: bool = False,
) -> Any:  # fmt: skip
    """Replace each ``layer.self_attn`` in place by a ``LiquidHybridAttention`` reusing its q/k/v/o weights.

    ``window``: exact softmax over the last ``window`` tokens, the liquid recurrence for older ones (``0`` =
    pure liquid). ``backend``: the ``liquid_scan`` backend (``None``: ``LM_BACKEND`` or the licensed ``cpp``
    kernel; ``"reference"``/``"naive"`` are the unlicensed pure-PyTorch paths). ``sinks``: the first ``sinks``
    real tokens stay exact softmax keys for every query (``hf/sinks.py``; with ``window=0`` they are the only
    exact keys and every other key goes through the recurrence — not "pure liquid" any more).
    ``max_half_life``: the decay's initial half-lives span 1…``max_half_life`` tokens (default 4096).
    ``global_cache``: at most this many exact key/value pairs per layer and KV head, the ones the state recalls
    worst or that received the most attention (``cache_score``; ``hf/global_cache.py``; 0 = none), chosen each
    time a ``cache_block`` of keys leaves the window. ``per_query_mix``: each query sets its own weight of the
    liquid mass from the layer input (``LiquidParams.mix_query``; off = one weight per head). The new
    parameters are initialised (feature maps ≈ identity, multi-timescale decay) and untrained: call
    ``linearize`` or load trained ones with ``from_pretrained``. Returns the same model object.
    """
    _check_architecture(model)
    if is_patched(model):
        raise UnsupportedArchitecture("model is already patched", remedy="patch a fresh copy of the base model")
    if getattr(model.config, "_attn_implementation", "sdpa") not in ("sdpa", "eager"):
        model.set_attn_implementation("sdpa")  # the patched layer reads the 4-D sdpa/eager mask
    for layer in model.model.layers:
        layer.self_attn = LiquidHybridAttention(
            layer.self_attn, window, backend=backend, sinks=sinks, max_half_life=max_half_life,
            global_cache=global_cache, cache_block=cache_block, cache_score=cache_score, per_query_mix=per_query_mix,
        )  # fmt: skip
    board = ImportanceBoard()  # the global cache's token scores, shared down the layers of one forward call
    for layer in patched_layers(model):
        layer.board = board
    model.liquid_window, model.liquid_sinks = window, sinks
    return hold_per_forward(model)  # one licence check per forward and compiled op (ops/licence_hold.py)


def set_memory(
    model: Any, *, global_cache: int | None = None, cache_block: int | None = None, cache_score: str | None = None
) -> None:
    """Change a patched model's global cache (slots per layer and KV head, block, score) at inference time."""
    for layer in patched_layers(model):
        set_global_cache(layer, layer.global_cache if global_cache is None else global_cache,
                         layer.cache_block if cache_block is None else cache_block,
                         layer.cache_score if cache_score is None else cache_score)  # fmt: skip


def is_patched(model: Any) -> bool:
    return any(isinstance(m, LiquidHybridAttention) for m in model.modules())


def patched_layers(model: Any) -> list[LiquidHybridAttention]:
    return [m for m in model.modules() if isinstance(m, LiquidHybridAttention)]


def liquid_parameters(model: Any) -> Iterator[tuple[str, nn.Parameter]]:
    """``(name, parameter)`` of every parameter patch_model added (what stage 1 trains and save stores)."""
    for name, param in model.named_parameters():
        if ".liquid." in name:
            yield name, param


def set_mode(model: Any, mode: str) -> None:
    """``"hybrid"`` (the patched mixer), ``"softmax"`` (the original attention, same weights: the teacher) or
    ``"window"`` (the exact memories only — window, sinks, global cache — with the liquid state switched off)."""
    if mode not in MODES:
        raise ValueError(f"mode must be one of {', '.join(MODES)}, got {mode!r}")
    for layer in patched_layers(model):
        layer.mode = mode
