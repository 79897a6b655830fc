"""LiquidLM tool fixtures: a small synthetic corpus and one tiny trained checkpoint shared by the tests."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.lm.corpus import write_corpus

TINY_TRAIN = [
    "--d-model", "32", "--n-layers", "2", "--n-heads", "2", "--vocab-size", "300", "--seq-len", "32",
    "--batch-size", "4", "--warmup", "1", "--eval-windows", "4", "--lr", "3e-3", "--no-progress",
]  # fmt: skip


@pytest.fixture(scope="session")
def corpus(tmp_path_factory) -> Path:
    return write_corpus(tmp_path_factory.mktemp("corpus"))


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory, corpus) -> Path:
    """A 12-step liquid-mixer run (reference backend: needs no licence) → its out dir.

    LiquidMemory's own options (no gate, eps 1e-5): after 12 steps this model's greedy reply is letters, which
    the chat and browser tests can see; ``lm train``'s default (gated) one repeats the space token."""
    from liquid_memory.cli import main

    out = tmp_path_factory.mktemp("tiny_run")
    args = ["lm", "train", "--data", str(corpus), "--out-dir", str(out), "--steps", "12", "--eval-every", "6"]
    assert (
        main(args + TINY_TRAIN + ["--backend", "chunked", "--no-output-gate", "--out-norm-eps", "1e-5", "--no-qk-norm"])
        == 0
    )
    return out
