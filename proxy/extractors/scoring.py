"""Sentence scoring for the extractive extractors: BM25 (lexical) and static/contextual MiniLM (semantic).

All scorers take the question and the candidate sentences and return one float per sentence.
"""

from __future__ import annotations

from functools import lru_cache

import bm25s
import numpy as np
import Stemmer
from liquid_memory_proxy.pipeline.sentences import STOPWORDS, content_words
from liquid_memory_proxy.pipeline.tokens import get_tokenizer


@lru_cache(maxsize=1)
def _stemmer() -> Stemmer.Stemmer:
    return Stemmer.Stemmer("english")


def stems(text: str) -> list[str]:
    """Stemmed content words (the BM25 vocabulary)."""
    return _stemmer().stemWords(content_words(text))


def bm25_scores(question: str, sentences: list[str]) -> np.ndarray:
    """BM25 (Lucene variant, bm25s) score of every sentence for the question's stemmed content words."""
    corpus = [stems(s) for s in sentences]
    query = [w for w in dict.fromkeys(stems(question))]
    if not sentences or not query:
        return np.zeros(len(sentences), dtype=np.float32)
    retriever = bm25s.BM25()
    retriever.index(corpus, show_progress=False)
    vocab = retriever.vocab_dict
    known = [w for w in query if w in vocab]
    if not known:
        return np.zeros(len(sentences), dtype=np.float32)
    return np.asarray(retriever.get_scores(known), dtype=np.float32)


@lru_cache(maxsize=1)
def _ignored_token_ids() -> np.ndarray:
    """Token ids that carry no meaning for matching: stopwords, punctuation, special tokens."""
    tok = get_tokenizer()
    ids = [
        i for t, i in tok.get_vocab().items() if t in STOPWORDS or not any(c.isalnum() for c in t) or t.startswith("[")
    ]
    return np.asarray(sorted(ids), dtype=np.int64)


def _unit(x: np.ndarray) -> np.ndarray:
    return x / (np.linalg.norm(x, axis=-1, keepdims=True) + 1e-8)


class StaticScorer:
    """Cheap semantic views of every sentence from a static token table (distilled MiniLM vectors).

    Views (one cosine per sentence each): "idf" — idf-weighted mean of token vectors; "idf_centered" and
    "flat_centered" — the same with idf/uniform weights after removing the document's mean sentence
    vector (which otherwise dominates every cosine); "soft" — for each question word its best match among
    the sentence's words, idf-weighted (catches single-word synonyms). Each view misses different
    paraphrases, so candidates are pooled from all of them.
    """

    def __init__(self, table: np.ndarray) -> None:
        self.table = table
        self.ignored = _ignored_token_ids()

    def views(self, question: str, sentences: list[str]) -> dict[str, np.ndarray]:
        tok = get_tokenizer()
        vocab = self.table.shape[0]
        encs = tok.encode_batch(sentences, add_special_tokens=False)
        lengths = np.fromiter((len(e.ids) for e in encs), dtype=np.int64, count=len(encs))
        flat = np.fromiter((i for e in encs for i in e.ids), dtype=np.int64, count=int(lengths.sum()))
        owner = np.repeat(np.arange(len(encs)), lengths)
        keep = ~np.isin(flat, self.ignored)
        flat, owner = flat[keep], owner[keep]
        q_ids = np.asarray(tok.encode(question, add_special_tokens=False).ids, dtype=np.int64)
        q_ids = q_ids[~np.isin(q_ids, self.ignored)]
        names = ("idf", "idf_centered", "flat_centered", "soft")
        if len(q_ids) == 0 or len(flat) == 0:
            return {k: np.zeros(len(sentences), dtype=np.float32) for k in names}
        df = np.bincount(np.unique(owner * vocab + flat) % vocab, minlength=vocab)
        idf = np.log1p(len(sentences) / np.maximum(df, 1)).astype(np.float32)
        vecs = self.table[flat]
        # `owner` is sorted, so per-sentence reductions are segment reductions (reduceat, not slow ufunc.at)
        present, starts = np.unique(owner, return_index=True)
        out: dict[str, np.ndarray] = {}
        for weighting in ("idf", "flat"):
            w = idf[flat] if weighting == "idf" else np.ones(len(flat), dtype=np.float32)
            sent = np.zeros((len(sentences), self.table.shape[1]), dtype=np.float32)
            sent[present] = np.add.reduceat(vecs * w[:, None], starts, axis=0)
            sent = _unit(sent)
            qw = idf[q_ids] if weighting == "idf" else np.ones(len(q_ids), dtype=np.float32)
            q = _unit((self.table[q_ids] * qw[:, None]).sum(0))
            if weighting == "idf":
                out["idf"] = sent @ q
            mean = sent.mean(0)
            out[f"{weighting}_centered"] = _unit(sent - mean) @ _unit(q - mean)
        vocab_ids, inverse = np.unique(flat, return_inverse=True)
        per_token = (self.table[q_ids] @ self.table[vocab_ids].T)[:, inverse]  # (question words, doc tokens)
        best = np.zeros((len(q_ids), len(sentences)), dtype=np.float32)
        best[:, present] = np.maximum.reduceat(per_token, starts, axis=1)
        qw = idf[q_ids]
        out["soft"] = (np.clip(best, 0, None) * qw[:, None]).sum(0) / (qw.sum() + 1e-8)
        return {k: v.astype(np.float32) for k, v in out.items()}


def rrf(rankings: list[np.ndarray], k: float = 60.0) -> np.ndarray:
    """Reciprocal-rank fusion of several score arrays (robust to their different scales)."""
    fused = np.zeros(len(rankings[0]), dtype=np.float64)
    for scores in rankings:
        order = np.argsort(-scores, kind="stable")
        ranks = np.empty(len(scores), dtype=np.float64)
        ranks[order] = np.arange(len(scores))
        fused += 1.0 / (k + ranks)
    return fused


def zscore(x: np.ndarray) -> np.ndarray:
    """Standardise scores so differently scaled signals can be added (constant input → zeros)."""
    if x.size == 0:
        return x
    sd = float(x.std())
    return (x - x.mean()) / sd if sd > 1e-9 else np.zeros_like(x)
