"""The C++ ``liquid_scan`` kernels against the float64 sequential oracle, on fixed-seed random inputs.

The cpp kernels compute in fp32, so instead of ``torch.autograd.gradcheck`` (which needs float64
arithmetic end to end) their gradients are compared by relative error with float64 autograd through
the naive oracle, and checked against central finite differences of the cpp forward itself.
"""

from __future__ import annotations

import pytest
import torch

from liquid_memory.ops.cpp import cpp_available, cpp_liquid_scan, cpp_liquid_step
from liquid_memory.ops.naive import naive_liquid_scan
from tests.numerics import rel_err


def test_extension_is_built():
    """The cpp backend is part of every install: a missing build fails here (and below), it is never skipped."""
    assert cpp_available(), "liquid_memory._C is not built: pip install --no-build-isolation -e ."


DECAYS = {
    "weak": lambda shape, g: -0.02 * torch.rand(shape, generator=g),
    "strong": lambda shape, g: -20.0 * torch.rand(shape, generator=g),
    # per channel: half-lives from 1 to ~1e4 tokens, plus rare -20 steps (one token wipes a channel)
    "mixed": lambda shape, g: (
        -(10.0 ** (-4 * torch.rand(shape[-1:], generator=g))) * torch.ones(shape)
        - 20.0 * (torch.rand(shape, generator=g) < 0.02)
    ),
}


def make_inputs(B, H, T, d, decay="mixed", dtype=torch.float32, seed=0, init=False):
    g = torch.Generator().manual_seed(seed)
    q, k, v = (torch.randn(B, H, T, d, generator=g) / d**0.25 for _ in range(3))
    la = DECAYS[decay]((B, H, T, d), g).float()
    s0 = torch.randn(B, H, d, d, generator=g) if init else None
    return q.to(dtype), k.to(dtype), v.to(dtype), la, s0


def oracle(q, k, v, la, s0, reverse):
    return naive_liquid_scan(
        q.double(), k.double(), v.double(), la.double(),
        initial_state=None if s0 is None else s0.double(), reverse=reverse, output_final_state=True,
    )  # fmt: skip


CASES = [  # (T, d, decay, reverse, init)
    (1, 32, "mixed", False, False),
    (63, 64, "strong", False, True),
    (65, 128, "weak", True, True),
    (1000, 64, "mixed", False, True),
    (200, 32, "strong", True, False),
    (130, 128, "mixed", True, True),
    (77, 24, "mixed", False, True),  # d not a multiple of 8 (padded inside the kernel)
]


@pytest.mark.parametrize("T,d,decay,reverse,init", CASES)
def test_forward_fp32_matches_float64_oracle(T, d, decay, reverse, init):
    q, k, v, la, s0 = make_inputs(2, 2, T, d, decay, seed=T + d, init=init)
    o, fs = cpp_liquid_scan(q, k, v, la, initial_state=s0, reverse=reverse, output_final_state=True)
    on, fn = oracle(q, k, v, la, s0, reverse)
    assert o.dtype == torch.float32 and fs.dtype == torch.float32 and fs.shape == (2, 2, d, d)
    assert rel_err(o, on) <= 1e-5
    assert rel_err(fs, fn) <= 1e-5


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
@pytest.mark.parametrize("T,d,decay,reverse,init", CASES[1:5])
def test_forward_half_precision(dtype, T, d, decay, reverse, init):
    q, k, v, la, s0 = make_inputs(1, 2, T, d, decay, dtype=dtype, seed=3 * T + d, init=init)
    o, fs = cpp_liquid_scan(q, k, v, la, initial_state=s0, reverse=reverse, output_final_state=True)
    on, fn = oracle(q, k, v, la, s0, reverse)  # oracle on the same (rounded) inputs
    assert o.dtype == dtype and fs.dtype == torch.float32
    assert rel_err(o, on) <= 1e-2
    assert rel_err(fs, fn) <= 1e-5  # the state stays fp32


def _grads(fn, q, k, v, la, s0, reverse, go, gf):
    xs = [t.clone().requires_grad_() for t in (q, k, v, la)] + ([] if s0 is None else [s0.clone().requires_grad_()])
    o, fs = fn(*xs[:4], initial_state=xs[4] if s0 is not None else None, reverse=reverse, output_final_state=True)
    loss = (o.double() * go).sum() + (fs.double() * gf).sum()
    return torch.autograd.grad(loss, xs)


@pytest.mark.parametrize("T,d,decay,reverse,init", CASES)
def test_gradients_fp32_match_float64_oracle(T, d, decay, reverse, init):
    q, k, v, la, s0 = make_inputs(1, 2, T, d, decay, seed=7 * T + d, init=init)
    g = torch.Generator().manual_seed(1)
    go = torch.randn(q.shape, generator=g, dtype=torch.float64)
    gf = torch.randn(1, 2, d, d, generator=g, dtype=torch.float64)
    got = _grads(cpp_liquid_scan, q, k, v, la, s0, reverse, go, gf)
    ref = _grads(naive_liquid_scan, *(t.double() for t in (q, k, v, la)), None if s0 is None else s0.double(),
                 reverse, go, gf)  # fmt: skip
    names = ["q", "k", "v", "log_a", "initial_state"]
    for name, a, b in zip(names, got, ref, strict=False):
        assert a.dtype == torch.float32
        assert rel_err(a, b) <= 1e-5, name


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_gradients_half_precision(dtype):
    q, k, v, la, s0 = make_inputs(1, 2, 150, 64, "mixed", dtype=dtype, seed=11, init=True)
    g = torch.Generator().manual_seed(2)
    go = torch.randn(q.shape, generator=g, dtype=torch.float64)
    gf = torch.randn(1, 2, 64, 64, generator=g, dtype=torch.float64)
    got = _grads(cpp_liquid_scan, q, k, v, la, s0, False, go, gf)
    ref = _grads(naive_liquid_scan, *(t.double() for t in (q, k, v, la, s0)), False, go, gf)
    for a, b in zip(got, ref, strict=True):
        assert rel_err(a, b) <= 1e-2


def test_gradients_match_finite_differences_of_cpp_forward():
    """Backward is the derivative of *this* forward: directional central differences in fp32."""
    q, k, v, la, s0 = make_inputs(1, 1, 70, 32, "mixed", seed=5, init=True)
    xs = [q, k, v, la - 0.05, s0]  # margin so that log_a ± eps·direction stays <= 0
    g = torch.Generator().manual_seed(9)
    go = torch.randn(q.shape, generator=g)

    def loss(ts):
        o, fs = cpp_liquid_scan(*ts[:4], initial_state=ts[4], output_final_state=True)
        return (o.double() * go).sum() + fs.double().sum()

    leaves = [t.clone().requires_grad_() for t in xs]
    grads = torch.autograd.grad(loss(leaves), leaves)
    for i, (x, gx) in enumerate(zip(xs, grads, strict=True)):
        direction = torch.randn(x.shape, generator=g)
        eps = 1e-3
        plus = [t if j != i else t + eps * direction for j, t in enumerate(xs)]
        minus = [t if j != i else t - eps * direction for j, t in enumerate(xs)]
        fd = (loss(plus) - loss(minus)) / (2 * eps)
        analytic = (gx.double() * direction.double()).sum()
        assert abs(float(fd - analytic)) <= 2e-3 * max(1.0, abs(float(analytic))), i


def test_extreme_decays_stay_finite_and_exact():
    q, k, v, _, s0 = make_inputs(1, 2, 130, 32, seed=4, init=True)
    la = torch.full(q.shape, -1000.0)
    la[..., ::3, :] = 0.0  # alternate "keep everything" and "wipe everything"
    o, fs = cpp_liquid_scan(q, k, v, la, initial_state=s0, output_final_state=True)
    on, fn = oracle(q, k, v, la, s0, False)
    assert rel_err(o, on) <= 1e-5 and rel_err(fs, fn) <= 1e-5
    xs = [t.clone().requires_grad_() for t in (q, k, v, la)]
    o, _ = cpp_liquid_scan(*xs)
    o.sum().backward()
    assert all(torch.isfinite(t.grad).all() for t in xs)


def test_precision_safe_reduces_state_drift_on_long_sums():
    """log_a = 0 makes the state a plain sum over 65536 tokens: the compensated recurrence drifts less."""
    T, d = 65536, 32
    g = torch.Generator().manual_seed(0)
    k = (torch.rand(1, 1, T, d, generator=g) + 0.5) / 8
    v = torch.rand(1, 1, T, d, generator=g) + 0.5
    q, la = torch.randn(1, 1, T, d, generator=g), torch.zeros(1, 1, T, d)
    exact = torch.einsum("bhtc,bhtm->bhcm", k.double(), v.double())
    errs = {}
    for safe in (False, True):
        _, fs = cpp_liquid_scan(q, k, v, la, output_final_state=True, precision_safe=safe)
        errs[safe] = rel_err(fs, exact)
    assert errs[True] <= 1e-6
    assert errs[True] < errs[False] / 4, errs


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_decode_step_chain_equals_scan(dtype):
    q, k, v, la, s0 = make_inputs(2, 3, 70, 64, "mixed", dtype=dtype, seed=21, init=True)
    o_scan, fs = cpp_liquid_scan(q, k, v, la, initial_state=s0, output_final_state=True)
    state = s0.clone()
    outs = []
    for t in range(q.shape[2]):
        o_t, new_state = cpp_liquid_step(q[:, :, t], k[:, :, t], v[:, :, t], la[:, :, t], state)
        assert new_state is state  # documented: updated in place
        outs.append(o_t)
    o_step = torch.stack(outs, dim=2)
    assert o_step.dtype == dtype
    assert rel_err(o_step, o_scan.float()) <= (1e-5 if dtype == torch.float32 else 1e-2)
    assert rel_err(state, fs) <= 1e-5


def test_noncontiguous_inputs():
    q, k, v, la, _ = make_inputs(2, 4, 90, 32, seed=8)
    as_btHd = [t.transpose(1, 2).contiguous().transpose(1, 2) for t in (q, k, v, la)]
    assert not as_btHd[0].is_contiguous()
    o1, _ = cpp_liquid_scan(q, k, v, la)
    o2, _ = cpp_liquid_scan(*as_btHd)
    assert torch.equal(o1, o2)


def test_clear_errors_on_bad_input():
    q, k, v, la, _ = make_inputs(1, 2, 10, 32)
    with pytest.raises(RuntimeError, match="log_a must be <= 0"):
        cpp_liquid_scan(q, k, v, la.abs() + 0.1)
    with pytest.raises(RuntimeError, match="share one shape"):
        cpp_liquid_scan(q, k[:, :, :5], v, la)
    with pytest.raises(RuntimeError, match="float64|Double|not supported"):
        cpp_liquid_scan(q.double(), k.double(), v.double(), la)
    with pytest.raises(RuntimeError, match="initial_state must be"):
        cpp_liquid_scan(q, k, v, la, initial_state=torch.zeros(1, 2, 32, 31))
    with pytest.raises(ValueError, match="dk == dv"):
        cpp_liquid_scan(q, k, v[..., :16], la)
    with pytest.raises(RuntimeError, match="state must be"):
        cpp_liquid_step(q[:, :, 0], k[:, :, 0], v[:, :, 0], la[:, :, 0], torch.zeros(1, 2, 32, 32).double())


def test_torch_compile_fullgraph_matches_eager():
    q, k, v, la, s0 = make_inputs(1, 2, 100, 32, seed=12, init=True)

    def f(q, k, v, la, s0):
        o, fs = cpp_liquid_scan(q, k, v, la, initial_state=s0, output_final_state=True)
        return o * 2.0, fs

    compiled = torch.compile(f, fullgraph=True, backend="inductor")
    leaves_e = [t.clone().requires_grad_() for t in (q, k, v, la, s0)]
    leaves_c = [t.clone().requires_grad_() for t in (q, k, v, la, s0)]
    oe, fe = f(*leaves_e)
    oc, fc = compiled(*leaves_c)
    assert torch.equal(oe, oc) and torch.equal(fe, fc)
    (oe.sum() + fe.sum()).backward()
    (oc.sum() + fc.sum()).backward()
    for a, b in zip(leaves_e, leaves_c, strict=True):
        assert torch.equal(a.grad, b.grad)


def test_mixer_benchmark_smoke(tmp_path):
    """The mixer benchmark runs end to end on a tiny shape and writes its JSON (no timing asserted)."""
    import json

    from liquid_memory.bench.mixer import format_table, run_mixer_benchmark

    out = tmp_path / "mixer.json"
    res = run_mixer_benchmark(
        128, 4, 1, (200,), backends=("naive", "chunked", "cpp"), budget_s=0.5, sgemm_n=256, threads=1,
        json_path=out, progress=False,
    )  # fmt: skip
    rows = {r["backend"]: r for r in json.loads(out.read_text())["rows"]}
    assert set(rows) == {"naive", "chunked", "cpp"}
    assert all(r["status"] == "ok" and r["fwd_ms"] > 0 for r in rows.values())
    assert rows["cpp"]["fwd_bwd_ms"] > 0 and res["sgemm_gflops"]["used"] > 0
    assert "cpp" in format_table(res)
