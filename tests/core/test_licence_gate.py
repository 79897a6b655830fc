"""The compiled backends run only under a verified licence; the reference path only when chosen."""

from __future__ import annotations

import pytest
import torch

from liquid_memory import LiquidMemory
from liquid_memory.errors import LicenseMissing
from liquid_memory.licensing import reset_cache


@pytest.fixture
def no_licence(monkeypatch):
    for var in ("LM_PRIVATE_KEY", "LM_PRIVATE_KEY_FILE", "LM_BACKEND"):
        monkeypatch.delenv(var, raising=False)
    reset_cache()
    yield
    reset_cache()


def test_default_backend_without_licence_raises_licence_missing(no_licence):
    module = LiquidMemory(32, 2, batch_first=True)
    x = torch.randn(1, 8, 32)
    with pytest.raises(LicenseMissing, match="LM_PRIVATE_KEY"):
        module(x, x, x, is_causal=True)


def test_compiled_graph_is_not_built_without_licence(no_licence):
    torch._dynamo.reset()
    module = LiquidMemory(32, 2, batch_first=True, backend="cpp")
    x = torch.randn(1, 8, 32)
    compiled = torch.compile(lambda x: module(x, x, x, is_causal=True, need_weights=False)[0], fullgraph=True)
    with pytest.raises(Exception) as info:
        compiled(x)
    chain, error = [], info.value
    while error is not None:
        chain.append(error)
        error = error.__cause__ or error.__context__
    assert any(isinstance(e, LicenseMissing) for e in chain), chain


def test_reference_backend_runs_without_licence_and_warns_once(no_licence, monkeypatch):
    import liquid_memory.ops.dispatch as dispatch

    monkeypatch.setenv("LM_BACKEND", "reference")
    monkeypatch.setattr(dispatch, "_warned_reference", False)
    module = LiquidMemory(32, 2, batch_first=True)
    x = torch.randn(1, 8, 32)
    with pytest.warns(UserWarning, match="slow, unlicensed evaluation path"):
        module(x, x, x, is_causal=True)
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        module(x, x, x, is_causal=True)


def test_unknown_backend_is_a_clear_error(no_licence):
    module = LiquidMemory(32, 2, batch_first=True, backend="cuda-magic")
    x = torch.randn(1, 8, 32)
    with pytest.raises(ValueError, match="unknown liquid_scan backend"):
        module(x, x, x)
