"""The LiquidLM checkpoint: the one module that writes and reads it.

One file (``torch.save``, loaded with ``weights_only=True`` — no pickled code runs on load)::

    {"format": "liquidlm-checkpoint-v1", "model_config": {...}, "tokenizer": "<tokenizers JSON>",
     "model": state_dict, "step": int, "train_args": {...}, "log": {...},
     "optimizer": state_dict | None, "scheduler": state_dict | None}

It is written to a temporary file and renamed, so a crash mid-write never leaves a truncated checkpoint.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from liquid_memory.lm.errors import CheckpointError, CheckpointMismatch
from liquid_memory.lm.tokenizer import TextCodec
from liquid_memory.models import ConfigError, LiquidLM, LiquidLMConfig

FORMAT = "liquidlm-checkpoint-v1"


@dataclass
class Checkpoint:
    config: LiquidLMConfig
    codec: TextCodec
    model_state: dict[str, torch.Tensor]
    step: int = 0
    train_args: dict[str, Any] = field(default_factory=dict)
    log: dict[str, Any] = field(default_factory=dict)
    optimizer: dict[str, Any] | None = None
    scheduler: dict[str, Any] | None = None

    def build_model(self) -> LiquidLM:
        """A model with this checkpoint's configuration and weights."""
        model = LiquidLM(self.config)
        try:
            model.load_state_dict(self.model_state)
        except RuntimeError as err:
            raise CheckpointError(
                f"the weights do not fit the stored configuration: {str(err).splitlines()[0]}",
                remedy="the checkpoint file was edited or written by another version; retrain or use another one",
            ) from None
        return model


def save_checkpoint(path: str | Path, checkpoint: Checkpoint) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        "format": FORMAT,
        "model_config": checkpoint.config.to_dict(),
        "tokenizer": checkpoint.codec.to_json(),
        "model": checkpoint.model_state,
        "step": checkpoint.step,
        "train_args": checkpoint.train_args,
        "log": checkpoint.log,
        "optimizer": checkpoint.optimizer,
        "scheduler": checkpoint.scheduler,
    }
    tmp = path.with_name(path.name + ".tmp")
    torch.save(payload, tmp)
    os.replace(tmp, path)


def load_checkpoint(path: str | Path, expected: LiquidLMConfig | None = None) -> Checkpoint:
    """Read a checkpoint; with ``expected``, refuse one trained with another model configuration."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {str(path)!r} does not exist")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001 - any unreadable file is the same user error
        raise CheckpointError(f"{str(path)!r} is not a readable checkpoint ({type(err).__name__})") from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise CheckpointError(f"{str(path)!r} is not a LiquidLM checkpoint (expected format {FORMAT})")
    try:
        config = LiquidLMConfig.from_dict(payload["model_config"])
        codec = TextCodec.from_json(payload["tokenizer"])
    except (ConfigError, KeyError, TypeError, ValueError, Exception) as err:  # noqa: BLE001
        raise CheckpointError(f"{str(path)!r} has an unreadable configuration or tokenizer: {err}") from None
    if codec.vocab_size != config.vocab_size:
        raise CheckpointError(
            f"{str(path)!r}: tokenizer has {codec.vocab_size} tokens, the model {config.vocab_size}",
            remedy="the checkpoint file was edited or assembled from two runs; use the file training wrote",
        )
    if expected is not None and expected != config:
        raise CheckpointMismatch(
            f"{str(path)!r} was trained with another configuration: {describe_diff(config, expected)}"
        )
    return Checkpoint(
        config=config,
        codec=codec,
        model_state=payload["model"],
        step=int(payload.get("step", 0)),
        train_args=payload.get("train_args") or {},
        log=payload.get("log") or {},
        optimizer=payload.get("optimizer"),
        scheduler=payload.get("scheduler"),
    )


def describe_diff(stored: LiquidLMConfig, asked: LiquidLMConfig) -> str:
    old, new = stored.to_dict(), asked.to_dict()
    return ", ".join(
        f"{key}={old[key]!r} in the checkpoint but {new[key]!r} asked" for key in old if old[key] != new[key]
    )
