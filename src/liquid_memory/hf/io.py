"""The on-disk format of a linearized model (this module writes and reads it; nothing else does).

``DIR/`` holds only what differs from the base model, plus a reference to it:
- ``liquid_config.json``: ``format`` (``liquid-memory-hf/1``), ``base_model`` (a short name such as
  ``smollm2-135m`` or a local transformers folder), ``base_sha256`` (SHA-256 over the base model's
  state_dict tensors, names and bytes, checked at load), ``architecture``, ``window``, ``sinks`` (exact
  first tokens, 0 when absent), ``global_cache``, ``cache_block`` and ``cache_score`` (the exact-pair cache
  the model runs with; none when absent — inference settings ``from_pretrained`` can override),
  ``per_query_mix`` (whether ``liquid.safetensors`` holds a per-query mix head; false when absent), ``lora`` (rank,
  alpha, target modules, or null) and free-form ``training`` facts;
- ``liquid.safetensors``: every parameter ``patch_model`` adds (feature maps, decay, mix scale), by name;
- ``lora.safetensors`` (only if stage 2 ran): the LoRA factors ``A``, ``B`` of each adapted projection;
  at load they are merged into the base weights (``W += alpha/rank · B A``), so peft is not needed to load.
The full weights are never copied: for SmolLM2-135M the directory is ≈ 8 MB instead of 540 MB.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import torch

from liquid_memory.hf.errors import CheckpointInvalid
from liquid_memory.hf.global_cache import DEFAULT_BLOCK
from liquid_memory.hf.patch import liquid_parameters, patch_model, patched_layers

FORMAT = "liquid-memory-hf/1"
CONFIG_NAME, LIQUID_NAME, LORA_NAME = "liquid_config.json", "liquid.safetensors", "lora.safetensors"


def base_fingerprint(model: Any) -> str:
    """SHA-256 over the (unpatched) base weights: names, shapes and fp32 bytes, in name order."""
    digest = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        if ".liquid." in name:
            continue
        digest.update(name.encode())
        digest.update(str(tuple(tensor.shape)).encode())
        digest.update(tensor.detach().float().contiguous().numpy().tobytes())
    return digest.hexdigest()


def save_liquid(
    model: Any,
    out_dir: str | Path,
    *,
    base_model: str,
    base_sha256: str,
    lora: dict[str, torch.Tensor] | None = None,
    lora_meta: dict[str, Any] | None = None,
    training: dict[str, Any] | None = None,
) -> Path:
    """Write ``DIR`` for a patched model (see the module docstring). ``lora``: ``{module name: A | B}``."""
    from safetensors.torch import save_file

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    tensors = {name: p.detach().float().contiguous() for name, p in liquid_parameters(model)}
    if not tensors:
        raise CheckpointInvalid("model is not patched: nothing to save", remedy="call patch_model first")
    save_file(tensors, str(out / LIQUID_NAME))
    if lora:
        save_file({k: v.detach().float().contiguous() for k, v in lora.items()}, str(out / LORA_NAME))
    config = {
        "format": FORMAT,
        "base_model": base_model,
        "base_sha256": base_sha256,
        "architecture": type(model).__name__,
        "window": model.liquid_window,
        "sinks": getattr(model, "liquid_sinks", 0),
        **_memory_config(model),
        "lora": lora_meta if lora else None,
        "training": training or {},
    }
    (out / CONFIG_NAME).write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")
    return out


def _memory_config(model: Any) -> dict[str, int]:
    layers = patched_layers(model)
    if not layers:
        return {}
    return {"global_cache": layers[0].global_cache, "cache_block": layers[0].cache_block,
            "cache_score": layers[0].cache_score, "per_query_mix": layers[0].liquid.mix_query is not None}  # fmt: skip


def read_config(path: str | Path) -> dict[str, Any]:
    cfg_path = Path(path) / CONFIG_NAME
    if not cfg_path.is_file():
        raise CheckpointInvalid(f"{cfg_path} not found")
    try:
        config = json.loads(cfg_path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise CheckpointInvalid(f"{cfg_path} is not valid JSON ({exc.msg})") from None
    if config.get("format") != FORMAT:
        raise CheckpointInvalid(f"{cfg_path}: format {config.get('format')!r}, expected {FORMAT!r}")
    return config


def load_liquid_into(model: Any, path: str | Path) -> None:
    """Load ``liquid.safetensors`` (and merge ``lora.safetensors``) into an already patched ``model``."""
    from safetensors.torch import load_file

    path = Path(path)
    try:
        tensors = load_file(str(path / LIQUID_NAME))
    except (FileNotFoundError, OSError) as exc:
        raise CheckpointInvalid(f"cannot read {path / LIQUID_NAME}: {exc}") from None
    params = dict(liquid_parameters(model))
    if set(tensors) != set(params):
        missing, extra = sorted(set(params) - set(tensors)), sorted(set(tensors) - set(params))
        raise CheckpointInvalid(
            f"{path / LIQUID_NAME} does not fit this model (missing {missing[:3]}, extra {extra[:3]})"
        )
    with torch.no_grad():
        for name, p in params.items():
            if tensors[name].shape != p.shape:
                raise CheckpointInvalid(f"{name}: stored shape {tuple(tensors[name].shape)} != {tuple(p.shape)}")
            p.copy_(tensors[name])
        if (path / LORA_NAME).is_file():
            merge_lora(model, load_file(str(path / LORA_NAME)), read_config(path)["lora"])


def merge_lora(model: Any, factors: dict[str, torch.Tensor], meta: dict[str, Any]) -> None:
    """``W += alpha / rank · B @ A`` for each ``{module}.lora_A`` / ``{module}.lora_B`` pair."""
    modules = dict(model.named_modules())
    scale = float(meta["alpha"]) / float(meta["rank"])
    with torch.no_grad():
        _merge(modules, factors, scale)


def _merge(modules: dict[str, Any], factors: dict[str, torch.Tensor], scale: float) -> None:
    for key in sorted(k for k in factors if k.endswith(".lora_A")):
        name = key[: -len(".lora_A")]
        if name not in modules or f"{name}.lora_B" not in factors:
            raise CheckpointInvalid(f"LoRA factor {key} names no module of this model")
        weight = modules[name].weight
        weight.add_((factors[f"{name}.lora_B"] @ factors[key]).to(weight.dtype) * scale)


def from_pretrained(
    path: str | Path, *, backend: str | None = None, cache_dir: Path | None = None, global_cache: int | None = None,
    cache_score: str | None = None, weights: str = "fp32",
) -> tuple[Any, Any]:  # fmt: skip
    """``(model, tokenizer)`` of a linearized model: the base model, patched, with the stored parameters.

    ``global_cache``: exact-pair slots per layer and KV head, ``cache_score``: how they are chosen
    (``global_cache.SCORES``; ``None``: what ``DIR`` stores — for questions about a long prompt, ``"prompt"``).
    ``weights``: how the base model's linear weights, LM head and embedding are held for serving — ``fp32`` (as
    trained), ``bf16`` or ``int8`` (weight-only, per output channel; ``hf/weights.py``). The LoRA factors are merged
    before the conversion; the liquid parameters stay fp32."""
    from liquid_memory.hf.smollm import load_base
    from liquid_memory.hf.weights import check_format, convert_weights

    check_format(weights)  # before the base model loads
    config = read_config(path)
    model, tokenizer = load_base(config["base_model"], cache_dir)
    if type(model).__name__ != config["architecture"]:
        raise CheckpointInvalid(f"base model is a {type(model).__name__}, {path} was made for {config['architecture']}")
    if base_fingerprint(model) != config["base_sha256"]:
        raise CheckpointInvalid(f"the base model {config['base_model']!r} differs from the one {path} was trained on")
    slots = int(config.get("global_cache", 0)) if global_cache is None else global_cache
    patch_model(model, window=int(config["window"]), backend=backend, sinks=int(config.get("sinks", 0)),
                global_cache=slots, cache_block=int(config.get("cache_block", DEFAULT_BLOCK)),
                cache_score=config.get("cache_score", "attention") if cache_score is None else cache_score,
                per_query_mix=bool(config.get("per_query_mix", False)))  # fmt: skip
    load_liquid_into(model, path)
    return convert_weights(model, weights).eval(), tokenizer
