"""Cases, prompts and scoring of the long-context retrieval evaluation (``python -m benchmarks hf-retrieval``).

Three tasks, each a fact hidden in a haystack and a question about it, as a plain completion prompt: an
instruction, the haystack, the question and the start of the answer, which the model continues greedily (the
classic pass-key format; SmolLM2-135M-Instruct's chat template made the original model itself miss every pass
key at 4K — measured — so it is not used):

- ``passkey``: a 5-digit pass key in repeated filler sentences (the classic test of Landmark Attention and
  LongLoRA) — can the model carry one unusual token string across the haystack?
- ``needle``: one unusual sentence ("The secret ingredient in Aunt Mirela's plum cake is cardamom.") in real
  prose — the held-out essays only, never the text linearization trains on;
- ``multikey``: several facts of the same shape ("The access code for the red door is 40721.") spread over
  the filler, one of them asked — capacity, not one lucky slot. The asked fact sits at the cell's depth,
  the others at random depths.

The texts are fixed (``retrieval_texts.json``); keys, the other facts' depths and the essay offset are drawn
from the run's seed by ``make_cases``, so a seed names the exact prompts. ``depth`` is the share of the
haystack's tokens before the asked fact. A prompt has at most ``length`` tokens.
"""

from __future__ import annotations

import json
import random
import re
from dataclasses import asdict, dataclass
from functools import cache
from pathlib import Path
from typing import Any

TEXTS_PATH = Path(__file__).with_name("retrieval_texts.json")
TASKS = ("passkey", "needle", "multikey")
KEY_DIGITS = 5


@dataclass(frozen=True)
class Case:
    """One prompt: the facts (in haystack order) with their depths, the question and the expected answer."""

    task: str
    length: int
    depth: float
    facts: tuple[str, ...]
    fact_depths: tuple[float, ...]
    question: str
    answer_prefix: str
    answer: str
    distractors: tuple[str, ...] = ()  # the other facts' answers (multikey): naming one is a near miss
    haystack_start: int = 0  # first haystack sentence (the needle task starts at a seeded essay sentence)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@cache
def load_texts(path: Path = TEXTS_PATH) -> dict[str, Any]:
    return json.loads(path.read_text(encoding="utf-8"))


def _key(rng: random.Random) -> str:
    return str(rng.randrange(10 ** (KEY_DIGITS - 1), 10**KEY_DIGITS))


def make_cases(
    seed: int, lengths: list[int], depths: list[float], per_cell: int, tasks: tuple[str, ...] = TASKS,
    multikey_facts: int = 4, essay_sentences: int = 1, texts: dict[str, Any] | None = None,
) -> list[Case]:  # fmt: skip
    """Every (task, length, depth) cell ``per_cell`` times, drawn deterministically from ``seed``.

    ``essay_sentences``: how many haystack sentences the needle task can start from (its seeded offset)."""
    texts = texts or load_texts()
    cases = []
    for task in tasks:
        for length in lengths:
            for depth in depths:
                for i in range(per_cell):
                    rng = random.Random(f"{seed}/{task}/{length}/{depth}/{i}")
                    cases.append(_case(task, length, depth, i, rng, texts, multikey_facts, essay_sentences))
    return cases


def _case(task, length, depth, i, rng, texts, multikey_facts, essay_sentences) -> Case:  # fmt: skip
    if task == "passkey":
        spec, key = texts["passkey"], _key(rng)
        return Case(task, length, depth, (spec["fact"].format(key=key),), (depth,), spec["question"],
                    spec["answer_prefix"], key)  # fmt: skip
    if task == "needle":
        needle = texts["needles"][i % len(texts["needles"])]
        start = rng.randrange(max(essay_sentences, 1))
        return Case(task, length, depth, (needle["fact"],), (depth,), needle["question"], needle["answer_prefix"],
                    needle["answer"], haystack_start=start)  # fmt: skip
    if task == "multikey":
        spec = texts["multikey"]
        names = rng.sample(spec["names"], multikey_facts)
        keys = [_key(rng) for _ in names]
        while len(set(keys)) < len(keys):  # distinct codes, so naming another door's code is a clear miss
            keys = [_key(rng) for _ in names]
        others = sorted(rng.random() for _ in names[1:])
        placed = sorted([(depth, 0)] + [(d, j + 1) for j, d in enumerate(others)])  # the asked fact is index 0
        facts = tuple(spec["fact"].format(name=names[j], key=keys[j]) for _, j in placed)
        return Case(task, length, depth, facts, tuple(d for d, _ in placed),
                    spec["question"].format(name=names[0]), spec["answer_prefix"].format(name=names[0]), keys[0],
                    tuple(keys[1:]))  # fmt: skip
    raise ValueError(f"unknown task {task!r} (choose from {', '.join(TASKS)})")


def split_sentences(text: str) -> list[str]:
    """Sentences of prose (split after . ! ? followed by white space); blank ones dropped."""
    return [s.strip() for s in re.split(r"(?<=[.!?])\s+", " ".join(text.split())) if s.strip()]


class PromptBuilder:
    """Token ids of a case's prompt: instruction, haystack, question and answer prefix as one plain text.
    ``essays``: the haystack sentences of the needle task."""

    def __init__(self, tokenizer: Any, essays: list[str], texts: dict[str, Any] | None = None) -> None:
        self.tokenizer, self.essays, self.texts = tokenizer, essays, texts or load_texts()
        self._lengths: dict[str, int] = {}

    def _tokens(self, sentence: str) -> int:
        if sentence not in self._lengths:
            self._lengths[sentence] = len(self.tokenizer(" " + sentence, add_special_tokens=False)["input_ids"])
        return self._lengths[sentence]

    def _haystack(self, case: Case, budget: int) -> list[str]:
        """Haystack sentences with at most ``budget`` tokens (approximately: counted one sentence at a time)."""
        source = self.essays if case.task == "needle" else self.texts["filler"]
        out, used, i = [], 0, case.haystack_start
        while True:
            sentence = source[i % len(source)]
            if used + self._tokens(sentence) > budget:
                return out
            out.append(sentence)
            used += self._tokens(sentence)
            i += 1

    def text(self, case: Case, budget: int) -> str:
        hay = self._haystack(case, budget)
        total = sum(self._tokens(s) for s in hay)
        inserts: dict[int, list[str]] = {}
        for fact, depth in zip(case.facts, case.fact_depths, strict=True):
            before, index = 0, 0
            while index < len(hay) and before + self._tokens(hay[index]) <= depth * total:
                before += self._tokens(hay[index])
                index += 1
            inserts.setdefault(index, []).append(fact)
        parts = []
        for index in range(len(hay) + 1):
            parts += inserts.get(index, [])
            if index < len(hay):
                parts.append(hay[index])
        return " ".join(parts)

    def ids(self, case: Case) -> list[int]:
        """The prompt's token ids: the largest haystack that keeps it within ``case.length`` tokens."""
        overhead = len(self._encode(case, ""))
        budget = case.length - overhead - sum(self._tokens(f) for f in case.facts)
        while budget > 0:
            ids = self._encode(case, self.text(case, budget))
            if len(ids) <= case.length:
                return ids
            budget -= max(8, len(ids) - case.length)
        raise ValueError(f"length {case.length} leaves no room for a haystack ({overhead} tokens of template)")

    def _encode(self, case: Case, haystack: str) -> list[int]:
        text = f"{self.texts['instruction']}\n\n{haystack}\n\n{case.question} {case.answer_prefix}"
        return self.tokenizer(text.replace("\n\n\n\n", "\n\n"), add_special_tokens=False)["input_ids"]


def _normalise(text: str) -> str:
    return " ".join(re.sub(r"[^\w\s]", " ", text.lower()).split())


def found(answer: str, expected: str) -> bool:
    """Exact match of the expected key in the model's answer: a digit key must appear as a whole digit run
    (``71432`` in "is 71432." — not in "714320" or "7143"); a phrase as whole words, case and punctuation
    ignored ("blue teapot" in "inside a Blue teapot!" — not in "blue teapots")."""
    if expected.isdigit():
        return expected in re.findall(r"\d+", answer)
    return re.search(rf"(?<!\w){re.escape(_normalise(expected))}(?!\w)", _normalise(answer)) is not None


def score(answer: str, case: Case) -> dict[str, bool]:
    """``hit``: the expected key is in the answer; ``distractor``: another fact's key is (multikey)."""
    return {"hit": found(answer, case.answer), "distractor": any(found(answer, d) for d in case.distractors)}
