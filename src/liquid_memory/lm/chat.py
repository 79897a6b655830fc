"""Generation from a trained checkpoint, shared by ``lm chat`` (terminal) and ``lm ui`` (web).

Each reply prefills the prompt once and then decodes with the model's state: O(1) work per token for the
``liquid`` and ``liquidnet`` mixers. Text streams out as tokens arrive (see ``StreamDecoder``).
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TextIO

import torch

from liquid_memory.lm.checkpoint import load_checkpoint
from liquid_memory.lm.errors import PromptError
from liquid_memory.lm.tokenizer import StreamDecoder


class Generator:
    """A checkpoint loaded for generation; ``max_prompt_tokens`` defaults to the training context length."""

    def __init__(self, checkpoint: str | Path, *, max_prompt_tokens: int | None = None, backend: str | None = None):
        ckpt = load_checkpoint(checkpoint)
        if backend is not None:
            ckpt.config.backend = backend
        self.config, self.codec = ckpt.config, ckpt.codec
        self.model = ckpt.build_model().eval()
        self.step = ckpt.step
        self.max_prompt_tokens = max_prompt_tokens or self.config.max_seq_len

    def describe(self) -> str:
        c = self.config
        return (
            f"LiquidLM mixer={c.mixer} d_model={c.d_model} layers={c.n_layers} "
            f"params={self.model.num_parameters() / 1e6:.1f}M trained {self.step} steps"
        )

    def encode_prompt(self, prompt: str) -> torch.Tensor:
        if not prompt.strip():
            raise PromptError("the prompt is empty", remedy="type some text for the model to continue")
        ids = self.codec.encode(prompt)
        if len(ids) > self.max_prompt_tokens:
            raise PromptError(f"the prompt has {len(ids)} tokens, more than the limit of {self.max_prompt_tokens}")
        return torch.tensor([ids], dtype=torch.long)

    def reply(
        self, prompt: str, *, max_new_tokens: int = 200, temperature: float = 0.8, top_k: int | None = 50,
        seed: int | None = None,
    ) -> Iterator[str]:  # fmt: skip
        """Stream the continuation of ``prompt`` as text pieces; stops at ``<|endoftext|>``."""
        ids = self.encode_prompt(prompt)
        if max_new_tokens <= 0:
            raise PromptError(f"max_new_tokens must be positive, got {max_new_tokens}", remedy="")
        generator = torch.Generator().manual_seed(seed) if seed is not None else None
        decoder = StreamDecoder(self.codec)
        for token in self.model.stream(
            ids, max_new_tokens, temperature=temperature, top_k=top_k, eos_id=self.codec.eos_id, generator=generator
        ):
            if int(token) == self.codec.eos_id:
                return
            piece = decoder.push(int(token))
            if piece:
                yield piece


def chat_loop(gen: Generator, *, prompt: str | None, stdin: TextIO, stdout: TextIO, **sampling) -> int:
    """One reply to ``prompt``, or an interactive loop over lines of ``stdin`` (empty line or EOF ends it)."""
    print(gen.describe(), file=sys.stderr)
    prompts = [prompt] if prompt is not None else None
    while True:
        if prompts is not None:
            if not prompts:
                return 0
            text = prompts.pop()
        else:
            if stdin.isatty():
                stdout.write("\n> ")
                stdout.flush()
            line = stdin.readline()
            if not line or not line.strip():
                return 0
            text = line.rstrip("\n")
        try:
            for piece in gen.reply(text, **sampling):
                stdout.write(piece)
                stdout.flush()
        except PromptError as err:
            if prompts is not None:
                raise
            print(f"error: {err}", file=sys.stderr)  # interactive: say why, keep the session
            continue
        stdout.write("\n")
        stdout.flush()
