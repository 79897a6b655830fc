"""``delta_rule=True``: the gated delta rule (ops/delta.py) — chunked form vs the sequential oracle, gradients,
stepping, and the module's decode from a saved state, padding and the errors of unsupported calls (its equations,
gradients and prefill + step checks are rows of the option matrix, test_layer_options.py)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from liquid_memory import LiquidMemory
from liquid_memory.ops import delta
from liquid_memory.ops.delta import chunked_delta_scan, delta_step, naive_delta_scan
from tests.core.layer_options import delta_module
from tests.core.layer_reference import reference_delta_layer
from tests.core.scan_cases import case_seed
from tests.numerics import rel_err


def delta_inputs(length, *, dtype=torch.float64, decay="mixed", dim=8, seed=None):
    """q, v random; k unit-norm per head (what qk_norm gives); log_a weak / strong / mixed; β in (0, 1)."""
    gen = torch.Generator().manual_seed(case_seed(length, str(dtype), decay, dim) if seed is None else seed)
    shape = (2, 3, length, dim)
    q, k, v = (torch.randn(shape, generator=gen, dtype=torch.float64) for _ in range(3))
    k = F.normalize(k, dim=-1)
    rate = torch.rand(shape, generator=gen, dtype=torch.float64)
    log_a = -{"weak": rate * 0.05, "strong": 1 + rate * 9, "mixed": rate.pow(4) * 10}[decay]
    beta = torch.rand(shape[:3], generator=gen, dtype=torch.float64)
    state = torch.randn(2, 3, dim, dim, generator=gen, dtype=torch.float64)
    return [t.to(dtype) for t in (q, k, v, log_a, beta)], state.to(dtype)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("decay", ["weak", "strong", "mixed"])
@pytest.mark.parametrize(("length", "chunk"), [(1, 16), (37, 16), (37, 4), (20, 1), (50, 64)])
def test_chunked_matches_sequential_oracle(dtype, decay, length, chunk):
    inputs, state = delta_inputs(length, dtype=dtype, decay=decay)
    o_ref, s_ref = naive_delta_scan(*inputs, initial_state=state, output_final_state=True)
    o, s = chunked_delta_scan(*inputs, initial_state=state, output_final_state=True, chunk_size=chunk)
    tol = 1e-12 if dtype == torch.float64 else 2e-5
    assert o.dtype == dtype and rel_err(o, o_ref) < tol and rel_err(s, s_ref) < tol
    o0, _ = chunked_delta_scan(*inputs, chunk_size=chunk)  # from S = 0
    assert rel_err(o0, naive_delta_scan(*inputs)[0]) < tol


def test_fast_and_exact_products_agree(monkeypatch):
    """Weak decays take the factorised GEMM form; forcing the exact [C, C, dk] form must give the same result."""
    inputs, state = delta_inputs(40, decay="weak")
    fast, fast_state = chunked_delta_scan(*inputs, initial_state=state, output_final_state=True)
    monkeypatch.setattr(delta, "FACTOR_LIMIT", -1.0)  # no chunk qualifies: the exact form everywhere
    exact, exact_state = chunked_delta_scan(*inputs, initial_state=state, output_final_state=True)
    assert rel_err(fast, exact) < 1e-12 and rel_err(fast_state, exact_state) < 1e-12


def test_strong_decay_stays_finite_in_float32():
    """Decays down to exp(-10) per token: 16-token chunks reach exp(-160), which the factorised form would overflow."""
    inputs, state = delta_inputs(64, dtype=torch.float32, decay="strong")
    o, s = chunked_delta_scan(*inputs, initial_state=state, output_final_state=True)
    o_ref, s_ref = naive_delta_scan(*inputs, initial_state=state, output_final_state=True)
    assert rel_err(o, o_ref) < 2e-5 and rel_err(s, s_ref) < 2e-5


@pytest.mark.parametrize("decay", ["weak", "mixed"])
def test_gradients_match_autograd_through_the_oracle(decay):
    inputs, state = delta_inputs(21, decay=decay)
    leaves = [t.clone().requires_grad_() for t in (*inputs, state)]
    gen = torch.Generator().manual_seed(7)
    w_o, w_s = torch.randn(2, 3, 21, 8, generator=gen, dtype=torch.float64), torch.randn(2, 3, 8, 8, generator=gen)

    def grads(scan, **kw):
        for leaf in leaves:
            leaf.grad = None
        o, s = scan(*leaves[:5], initial_state=leaves[5], output_final_state=True, **kw)
        ((o * w_o).sum() + (s * w_s.double()).sum()).backward()
        return [leaf.grad.clone() for leaf in leaves]

    expected = grads(naive_delta_scan)
    for chunk in (4, 16):
        for got, ref in zip(grads(chunked_delta_scan, chunk_size=chunk), expected, strict=True):
            assert ref.abs().sum() > 0 and rel_err(got, ref) < 1e-10


def test_step_matches_the_oracle_and_leaves_the_state_alone():
    inputs, state = delta_inputs(6)
    o_ref, s_ref = naive_delta_scan(*inputs, initial_state=state, output_final_state=True)
    s, outs = state.clone(), []
    for t in range(6):
        o_t, s_new = delta_step(*(x[:, :, t] for x in inputs), s)
        assert s_new is not s
        outs.append(o_t)
        s = s_new
    assert torch.equal(state, delta_inputs(6)[1])
    assert rel_err(torch.stack(outs, dim=2), o_ref) < 1e-12 and rel_err(s, s_ref) < 1e-12


def test_delta_write_then_read_returns_the_value():
    """β = 1, a = 1, unit key: reading the key right after the write gives exactly its value (the delta rule)."""
    (q, k, v, log_a, beta), state = delta_inputs(1)
    o, _ = naive_delta_scan(k, k, v, torch.zeros_like(log_a), torch.ones_like(beta), initial_state=state)
    assert rel_err(o, v) < 1e-12


# ------------------------------------------------------------------ the module


def test_decode_from_a_saved_state_equals_the_parallel_forward():
    """Beyond the option matrix's prefill + step check: every token stepped, and a prefill from a saved state."""
    module = delta_module().eval()
    x = torch.randn(2, 21, 16, generator=torch.Generator().manual_seed(5))
    with torch.no_grad():
        full, _ = module(x, x, x, is_causal=True, need_weights=False)
        module.reset_state()
        stepped = torch.stack([module.step(x[:, t]) for t in range(21)], dim=1)
        assert rel_err(stepped, full) < 1e-5
        module.reset_state()
        head = module.prefill(x[:, :13])
        snapshot = module.get_state()
        tail = torch.stack([module.step(x[:, t]) for t in range(13, 21)], dim=1)
        assert rel_err(torch.cat([head, tail], dim=1), full) < 1e-5
        module.set_state(snapshot)  # prefill the rest as one chunk from the saved state
        assert rel_err(module.prefill(x[:, 13:]), full[:, 13:]) < 1e-5
        assert snapshot.shape == (2, 2, 8, 8) and snapshot.dtype == torch.float32


def test_with_short_conv_matches_float64_recomputation_and_decodes():
    """The delta rule on convolved q/k/v: padded rows enter the convolution as zeros; the window crosses into steps."""
    module = delta_module(short_conv=4)
    x = torch.randn(2, 13, 16, generator=torch.Generator().manual_seed(8))
    padded = torch.zeros(2, 13, dtype=torch.bool)
    padded[1, :3] = True
    out, _ = module(x, x, x, key_padding_mask=padded, is_causal=True, need_weights=False)
    assert rel_err(out, reference_delta_layer(module, x, x, x, "causal", padded)[0]) < 1e-5
    module.qkv_conv = None  # the reference without the convolution really differs
    assert rel_err(reference_delta_layer(module, x, x, x, "causal", padded)[0], out) > 0.05
    module = delta_module(short_conv=4).eval()
    with torch.no_grad():
        full, _ = module(x, x, x, is_causal=True, need_weights=False)
        module.prefill(x[:, :6])
        steps = torch.stack([module.step(x[:, t]) for t in range(6, 13)], dim=1)
    assert rel_err(steps, full[:, 6:]) < 1e-5


def test_padded_keys_write_nothing():
    module = delta_module()
    x = torch.randn(1, 12, 16, generator=torch.Generator().manual_seed(6))
    padded = torch.zeros(1, 12, dtype=torch.bool)
    padded[0, [2, 3, 7]] = True
    out, _ = module(x, x, x, key_padding_mask=padded, is_causal=True, need_weights=False)
    assert rel_err(out, reference_delta_layer(module, x, x, x, "causal", padded)[0]) < 1e-5
    keep = ~padded[0]
    compact, _ = module(x[:, keep], x[:, keep], x[:, keep], is_causal=True, need_weights=False)
    assert rel_err(out[:, keep], compact) < 1e-5  # the real tokens see exactly the unpadded sequence


def test_unsupported_configurations_raise_typed_errors():
    with pytest.raises(ValueError, match="qk_norm"):
        LiquidMemory(16, 2, delta_rule=True)
    with pytest.raises(ValueError, match="coupled_input"):
        LiquidMemory(16, 2, delta_rule=True, qk_norm=True, coupled_input=True)
    module = delta_module()
    x, other = torch.randn(2, 5, 16), torch.randn(2, 7, 16)
    with pytest.raises(NotImplementedError, match="causal"):
        module(x, x, x, need_weights=False)  # bidirectional self-attention
    with pytest.raises(NotImplementedError, match="causal"):
        module(x, other, other, need_weights=False)  # cross-attention
    with pytest.raises(NotImplementedError, match="need_weights"):
        module(x, x, x, is_causal=True)  # MHA's default need_weights=True
    with pytest.raises(NotImplementedError):
        module(x, x, x, attn_mask=torch.eye(5, dtype=torch.bool), need_weights=False)
    with pytest.raises(ValueError, match="beta"):
        chunked_delta_scan(*(torch.zeros(1, 1, 4, 2) for _ in range(4)), torch.zeros(1, 4))


def test_delta_rule_is_off_by_default():
    module = LiquidMemory(16, 2)
    assert not module.delta_rule and module.beta_proj is None and "delta_rule" not in repr(module)
    assert not any(name.startswith("beta_proj") for name in module.state_dict())
