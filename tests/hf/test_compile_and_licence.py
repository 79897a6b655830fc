"""torch.compile of a patched model, and the licence gate governing its compiled kernels."""

from __future__ import annotations

import pytest
import torch

from liquid_memory.errors import LicenseMissing
from liquid_memory.hf import patch_model
from tests.hf.hf_models import perturb_liquid, tiny_model
from tests.numerics import rel_err


def test_compiled_forward_matches_eager_on_the_licensed_cpp_kernel(licensed):
    """Dynamo + AOTAutograd over the whole patched HF forward (the cpp op traced through its fake kernel).

    ``backend="aot_eager"``: Inductor's C++ code generation for a whole HF model took ~3 min on this shared
    CPU; Inductor itself is covered on the mixer by tests/core/test_compile.py."""
    model = patch_model(tiny_model(layers=1), window=4)  # backend None: LM_BACKEND unset -> the licensed cpp kernel
    perturb_liquid(model)
    ids = torch.randint(3, 61, (2, 20), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        eager = model(ids, use_cache=False).logits
        compiled = torch.compile(model.forward, backend="aot_eager")(input_ids=ids, use_cache=False).logits
    assert rel_err(compiled, eager) < 1e-5


def test_without_a_licence_the_compiled_kernels_refuse(monkeypatch):
    from liquid_memory.licensing import reset_cache

    for var in ("LM_PRIVATE_KEY", "LM_PRIVATE_KEY_FILE", "LM_BACKEND"):
        monkeypatch.delenv(var, raising=False)
    reset_cache()
    model = patch_model(tiny_model(), window=4)
    ids = torch.randint(3, 61, (1, 10))
    with pytest.raises(LicenseMissing):
        model(ids, use_cache=False)
    torch._dynamo.reset()
    with pytest.raises(Exception) as info:  # dynamo wraps it; the typed error is in the chain (as in tests/core)
        torch.compile(model.forward)(input_ids=ids, use_cache=False)
    chain, error = [], info.value
    while error is not None:
        chain.append(error)
        error = error.__cause__ or error.__context__
    assert any(isinstance(e, LicenseMissing) for e in chain), chain
    monkeypatch.setenv("LM_BACKEND", "reference")  # the explicit, unlicensed evaluation path still works
    assert torch.isfinite(model(ids, use_cache=False).logits).all()
    reset_cache()
