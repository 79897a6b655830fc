"""The CLI's table of optional modules agrees with the extras the package declares (setup.py ``extras_require``):
each module it names comes from a distribution of that extra, so ``LM901`` never sends a user to the wrong extra."""

from __future__ import annotations

import re
from importlib import metadata

import pytest
from packaging.requirements import Requirement

from liquid_memory.errors import ExtraMissing
from liquid_memory.extras import EXTRA_MODULES, extra_required


def _normal(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _extra_distributions(extra: str) -> set[str]:
    reqs = [Requirement(r) for r in metadata.requires("liquid-memory") or []]
    return {_normal(r.name) for r in reqs if r.marker is not None and r.marker.evaluate({"extra": extra})}


@pytest.mark.parametrize("extra", sorted(EXTRA_MODULES))
def test_every_module_of_an_extra_comes_from_that_extra(extra):
    providers = metadata.packages_distributions()
    declared = _extra_distributions(extra)
    assert declared, f"setup.py declares no extra {extra!r}"
    for module in EXTRA_MODULES[extra]:
        assert {_normal(d) for d in providers.get(module, [])} & declared, (module, extra, sorted(declared))


def test_a_missing_module_of_the_extra_becomes_a_typed_error():
    with pytest.raises(ExtraMissing) as info, extra_required("lm", "lm train"):
        raise ModuleNotFoundError("No module named 'tokenizers'", name="tokenizers")
    assert info.value.code == "LM901" and "liquid-memory[lm]" in str(info.value)


def test_any_other_missing_module_stays_a_bug():
    with pytest.raises(ModuleNotFoundError), extra_required("lm", "lm train"):
        raise ModuleNotFoundError("No module named 'transformers'", name="transformers")
