"""Retrieval-shaped training sequences for stage 2 of ``linearize``: facts early, questions late.

Distilling on plain prose teaches the patched model what the original predicts, but prose rarely asks for a
token seen hundreds of tokens earlier, so nothing pushes the memories beyond the window to carry one. A recall
sequence is training text with a few short facts spliced into its first half ("The copper tag is 40721.") and,
at its end, a question about each fact followed by its answer ("What is the copper tag? The copper tag is
40721."). The answer tokens sit far outside the window from their fact: the original (the teacher) predicts
them by attention, and the patched model can only match it through its state or its global cache. Their
positions are returned so the loss can weight them.

The facts' wording (noun + kind + value) is its own: none of the retrieval evaluation's texts (pass key,
door access codes, needles) are used, and the filler is the training split of the essays.
"""

from __future__ import annotations

import random
from typing import Any

import torch

NOUNS = (
    "copper", "harbor", "falcon", "granite", "orchard", "lantern", "meadow", "quarry", "beacon", "thistle",
    "compass", "glacier", "saffron", "walnut", "pebble", "canyon", "ember", "juniper", "marble", "tundra",
)  # fmt: skip
KINDS = ("tag", "number", "code", "label")
WORDS = ("velvet", "cobalt", "pelican", "tangerine", "zephyr", "mosaic", "quartz", "nutmeg", "obsidian", "tulip")


def _fact(rng: random.Random) -> tuple[str, str]:
    """``(subject, value)``: e.g. ``("copper tag", "40721")``; half the values are numbers, half words."""
    subject = f"{rng.choice(NOUNS)} {rng.choice(KINDS)}"
    value = str(rng.randrange(10000, 100000)) if rng.random() < 0.5 else rng.choice(WORDS)
    return subject, value


def recall_sequence(tokenizer: Any, filler: torch.Tensor, length: int, rng: random.Random, max_facts: int = 3):
    """``(ids [length], answer_mask [length] bool)`` from ``filler`` (1-D token ids, ≥ ``length`` long)."""

    def enc(text: str) -> list[int]:
        return tokenizer(text, add_special_tokens=False)["input_ids"]

    facts, subjects = [], set()
    while len(facts) < rng.randint(1, max_facts):
        subject, value = _fact(rng)
        if subject not in subjects:  # one value per subject, so every question has one answer
            subjects.add(subject)
            facts.append((subject, value))
    questions, answer_spans = [], []
    for subject, value in rng.sample(facts, len(facts)):
        asked = enc(f" What is the {subject}? The {subject} is")
        answer = enc(f" {value}.")
        answer_spans.append((len(questions) + len(asked), len(answer)))
        questions += asked + answer
    tail = enc("\n\nQuestions:") + questions
    body = length - len(tail)
    fact_ids = [enc(f" The {subject} is {value}.") for subject, value in facts]
    room = body - sum(len(f) for f in fact_ids)
    if room < length // 4:
        raise ValueError(f"length {length} is too short for {len(facts)} facts and their questions")
    start = rng.randrange(0, len(filler) - room + 1)
    text = filler[start : start + room].tolist()
    places = sorted(rng.randrange(0, room // 2) for _ in fact_ids)  # facts in the first half of the filler
    ids: list[int] = []
    last = 0
    for place, fact in zip(places, fact_ids, strict=True):
        ids += text[last:place] + fact
        last = place
    ids += text[last:]
    offset = len(ids) + len(enc("\n\nQuestions:"))
    ids += tail
    mask = torch.zeros(length, dtype=torch.bool)
    for begin, size in answer_spans:
        mask[offset + begin : offset + begin + size] = True
    return torch.tensor(ids[:length]), mask
