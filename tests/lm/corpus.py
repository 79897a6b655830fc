"""A small deterministic word-salad corpus for LiquidLM tests (the lm tool tests and the comparison benchmark's)."""

from __future__ import annotations

import random
from pathlib import Path

WORDS = (
    "the a model memory state token learns reads writes keeps every small long short fast slow river stone "
    "light garden morning night city road story number question answer because while after before"
).split()


def write_corpus(folder: Path, files: int = 12, sentences: int = 40, seed: int = 0) -> Path:
    """Deterministic word-salad essays (enough structure for a tiny model to lower its loss quickly)."""
    rng = random.Random(seed)
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(files):
        lines = []
        for _ in range(sentences):
            words = [rng.choice(WORDS) for _ in range(rng.randint(4, 10))]
            lines.append(" ".join(words).capitalize() + ".")
        (folder / f"doc{i:02d}.txt").write_text(" ".join(lines) + "\n", encoding="utf-8")
    return folder
