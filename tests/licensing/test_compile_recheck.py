"""A torch.compile'd model re-checks the licence on every call (outside the graph)."""

from __future__ import annotations

import time
from types import SimpleNamespace

import pytest
import torch
from liquid_memory_vendor.dev import issue_dev_licence

from liquid_memory import LiquidMemory
from liquid_memory import errors as E
from liquid_memory.licensing import licence as licence_module
from liquid_memory.licensing import reset_cache
from tests.numerics import rel_err


def test_compiled_model_raises_typed_errors_after_expiry_and_key_removal(monkeypatch):
    torch._dynamo.reset()
    torch.manual_seed(0)
    module = LiquidMemory(32, 2, batch_first=True, backend="cpp").eval()
    x = torch.randn(1, 40, 32)
    compiled = torch.compile(lambda x: module(x, x, x, is_causal=True, need_weights=False)[0], fullgraph=True)
    monkeypatch.setenv("LM_PRIVATE_KEY", issue_dev_licence(("kernel",), valid_days=1))
    with torch.no_grad():
        y = compiled(x)
        module.backend = "reference"
        assert rel_err(y, module(x, x, x, is_causal=True, need_weights=False)[0]) < 1e-4
        module.backend = "cpp"
        monkeypatch.delenv("LM_PRIVATE_KEY")  # key removed: the very next call refuses
        with pytest.raises(E.LicenseMissing):
            compiled(x)
        monkeypatch.setenv("LM_PRIVATE_KEY", issue_dev_licence(("kernel",), valid_days=1))
        reset_cache()
        compiled(x)  # valid again: the same compiled graph runs (no recompile, no dynamo error)
        later = time.time() + 2 * 86400  # the licence module's clock moves past the expiry
        monkeypatch.setattr(licence_module, "time", SimpleNamespace(time=lambda: later, strftime=time.strftime,
                                                                    gmtime=time.gmtime))  # fmt: skip
        with pytest.raises(E.LicenseExpired):
            compiled(x)
