"""The comparison benchmark's corpus: the same small synthetic text the LiquidLM tool tests train on."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.lm.corpus import write_corpus


@pytest.fixture(scope="session")
def corpus(tmp_path_factory) -> Path:
    return write_corpus(tmp_path_factory.mktemp("corpus"))
