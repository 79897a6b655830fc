"""The licence hold of a model forward (ops/licence_hold.py): one check per forward and compiled op, and every
way around it an attacker or a mistake could try — a key removed or swapped between tokens, a forward that
raised, another thread, a hold left open, a very long forward — still meets a licence check."""

from __future__ import annotations

import os
import threading

import pytest
import torch

from liquid_memory import errors as E
from liquid_memory.hf import LiquidHybridCache, patch_model
from liquid_memory.hf.weights import convert_weights
from liquid_memory.licensing import gate
from liquid_memory.ops import dispatch, licence_hold
from tests.hf.hf_models import tiny_model
from tests.licensing.helpers import make_licence


@pytest.fixture
def key_file(tmp_path, monkeypatch, trusted_vendor):
    """A kernel licence in ``LM_PRIVATE_KEY_FILE`` (no ``LM_PRIVATE_KEY``, no ``LM_BACKEND``)."""
    path = tmp_path / "k.key"
    path.write_text(make_licence(trusted_vendor))
    path.chmod(0o600)
    for var in ("LM_PRIVATE_KEY", "LM_BACKEND"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("LM_PRIVATE_KEY_FILE", str(path))
    gate.reset_cache()
    yield path
    gate.reset_cache()
    licence_hold._local.ops = None


@pytest.fixture
def checks(monkeypatch):
    """Count the licence checks the compiled-op getters make."""
    real, calls = dispatch._require_licence, []

    def counted():
        calls.append(1)
        return real()

    monkeypatch.setattr(dispatch, "_require_licence", counted)
    return calls


def _int8_hybrid():
    model = convert_weights(patch_model(tiny_model(), window=4, sinks=2), "int8")
    cache = LiquidHybridCache(model)
    ids = torch.randint(3, 61, (1, 8), generator=torch.Generator().manual_seed(0))
    return model, cache, ids


def _step(model, cache, token=5):
    with torch.no_grad():
        return model(torch.tensor([[token]]), past_key_values=cache, use_cache=True).logits


def test_one_check_per_forward_and_op(key_file, checks):
    """A decode step asks for the int8 matmul 7 times per layer (fused: 4) and the LM head once, and for the
    attention step once per layer; it checks the licence once for each of the two ops, at every step."""
    model, cache, ids = _int8_hybrid()
    with torch.no_grad():
        model(ids, past_key_values=cache, use_cache=True)
    for _ in range(2):
        before = len(checks)
        _step(model, cache)
        assert len(checks) - before == 2
    layer = model.model.layers[0].mlp.down_proj  # outside a forward: every call checks
    before = len(checks)
    with torch.no_grad():
        layer(torch.randn(1, 64))
        layer(torch.randn(1, 64))
    assert len(checks) - before == 2


def test_a_key_removed_or_swapped_between_tokens_stops_the_next_one(key_file, trusted_vendor):
    model, cache, ids = _int8_hybrid()
    with torch.no_grad():
        model(ids, past_key_values=cache, use_cache=True)
    _step(model, cache)
    other = key_file.with_name("other.key")  # renamed over the key file: a licence without "kernel"
    other.write_text(make_licence(trusted_vendor, features=["proxy"]))
    other.chmod(0o600)
    os.replace(other, key_file)
    with pytest.raises(E.FeatureNotLicensed):
        _step(model, cache)
    key_file.write_text(make_licence(trusted_vendor))
    assert torch.isfinite(_step(model, cache)).all()
    key_file.unlink()
    with pytest.raises(E.LicenseMissing):
        _step(model, cache)


def test_a_forward_that_raised_leaves_no_hold(key_file):
    """The closing hook runs when the forward raises: the next call outside a forward checks again."""
    model, cache, ids = _int8_hybrid()

    def fail(module, args, output):
        raise RuntimeError("injected failure after the first layer")

    handle = model.model.layers[0].register_forward_hook(fail)
    with pytest.raises(RuntimeError, match="injected"), torch.no_grad():
        model(ids[:, :1])
    handle.remove()
    assert licence_hold._local.ops is None
    key_file.unlink()
    with pytest.raises(E.LicenseMissing), torch.no_grad():
        model.model.layers[0].mlp.down_proj(torch.randn(1, 64))


def test_a_hold_is_per_thread_expires_and_is_replaced_by_the_next_forward(key_file, monkeypatch):
    """A hold left open (an interrupt that skipped the closing hook): its op serves this thread only, for at
    most HOLD_SECONDS, and the model's next forward starts a fresh hold that checks again."""
    with torch.no_grad():  # the getters hand out no op under autograd
        _held_then_expired_then_replaced(key_file, monkeypatch)


def _held_then_expired_then_replaced(key_file, monkeypatch) -> None:
    licence_hold._open(None, None)
    assert dispatch.int8_linear_kernel(None) is not None  # checked and held
    key_file.unlink()
    assert dispatch.int8_linear_kernel(None) is not None  # held: this thread, this (open) hold
    outcome: list[BaseException | None] = []

    def other_thread():
        try:
            with torch.no_grad():  # grad mode is per thread
                dispatch.int8_linear_kernel(None)
            outcome.append(None)
        except BaseException as exc:  # noqa: BLE001 - the thread hands the outcome to the test
            outcome.append(exc)

    worker = threading.Thread(target=other_thread)
    worker.start()
    worker.join(30)
    assert isinstance(outcome[0], E.LicenseMissing)
    clock = licence_hold.time.monotonic
    now = clock()
    monkeypatch.setattr(licence_hold.time, "monotonic", lambda: now + licence_hold.HOLD_SECONDS + 0.1)
    with pytest.raises(E.LicenseMissing):
        dispatch.int8_linear_kernel(None)
    monkeypatch.setattr(licence_hold.time, "monotonic", clock)  # the hold still open, the key file still gone
    licence_hold._open(None, None)
    licence_hold.hold(("cpp_int8_linear", None, "cpu"), dispatch.int8_linear_kernel)  # a stale entry
    model = convert_weights(tiny_model(), "int8")
    with pytest.raises(E.LicenseMissing):
        model(torch.tensor([[5]]))
    assert licence_hold._local.ops is None


def test_hooks_are_added_once():
    model = patch_model(tiny_model(), window=4)
    convert_weights(model, "int8")
    assert len(model._forward_pre_hooks) == 1 and len(model._forward_hooks) == 1


def test_a_release_install_checks_in_its_kernel_wrappers_outside_a_hold_only(key_file, checks, monkeypatch):
    """A release install's kernel wrappers (ops/cpp.py) check the licence inside every call besides the getters:
    inside a model forward the hold already checked it, so they do not check again; outside a forward, in another
    thread and once the key is gone they still do."""
    from liquid_memory.artifacts import native
    from liquid_memory.ops import cpp

    wrapper_checks: list[int] = []

    def release_check() -> None:  # what a release build's ensure_kernel_library does on every call
        wrapper_checks.append(1)
        dispatch._require_licence()

    monkeypatch.setattr(cpp, "_release", lambda: True)
    monkeypatch.setattr(native, "ensure_kernel_library", release_check)
    model, cache, ids = _int8_hybrid()
    with torch.no_grad():
        model(ids, past_key_values=cache, use_cache=True)
    before, wrapper_before = len(checks), len(wrapper_checks)
    _step(model, cache)
    assert len(checks) - before == 2 and len(wrapper_checks) == wrapper_before  # one check per op, none in wrappers
    layer = model.model.layers[0].mlp.down_proj
    with torch.no_grad():
        layer(torch.randn(1, 64))
        layer(torch.randn(1, 64))
    assert len(wrapper_checks) - wrapper_before == 2  # outside a forward: every wrapper call checks
    licence_hold._open(None, None)  # an open hold that checked nothing vouches for nothing
    with torch.no_grad():
        cpp.cpp_int8_linear(torch.randn(1, 64), layer.qweight, layer.scale, None)
    assert len(wrapper_checks) - wrapper_before == 3
    licence_hold._close(None, None, None)
    key_file.unlink()
    with pytest.raises(E.LicenseMissing), torch.no_grad():
        cpp.cpp_int8_linear(torch.randn(1, 64), layer.qweight, layer.scale, None)
