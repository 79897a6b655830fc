"""The Triton ``liquid_scan`` kernels against the float64 sequential oracle, run in the Triton interpreter.

No GPU here: ``TRITON_INTERPRET=1`` is set below, at collection time, before anything imports the kernels
(Triton picks interpreter vs compiler when a ``@triton.jit`` function is decorated). The interpreter
accepts CPU tensors but is thousands of times slower than compiled code, so sizes are tiny
(T ≤ 80, d ∈ {16, 32}, B·H ≤ 2). If ``triton`` is not installed these tests fail — they do not skip.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

os.environ["TRITON_INTERPRET"] = "1"

import pytest  # noqa: E402
import torch  # noqa: E402

from liquid_memory.ops.naive import naive_liquid_scan  # noqa: E402
from liquid_memory.ops.reference_step import reference_liquid_step  # noqa: E402
from liquid_memory.ops.triton_scan import (  # noqa: E402
    interpreter_enabled,
    triton_available,
    triton_liquid_scan,
    triton_liquid_step,
)
from tests.core.scan_cases import case_seed  # noqa: E402
from tests.numerics import rel_err  # noqa: E402

FP32_TOL, HALF_TOL = 1e-5, 1e-2

DECAYS = {
    "weak": lambda shape, g: -1e-3 * torch.rand(shape, generator=g),
    "strong": lambda shape, g: -1.0 - 19.0 * torch.rand(shape, generator=g),  # down to -20 per step
    # per channel half-lives from ~1 to ~1e4 tokens plus rare -20 steps that wipe a channel
    "mixed": lambda shape, g: (
        -(10.0 ** (-4 * torch.rand(shape[-1:], generator=g))) * torch.ones(shape)
        - 20.0 * (torch.rand(shape, generator=g) < 0.02)
    ),
}


def make_inputs(batch, heads, length, dim, decay, dtype=torch.float32, init=False, seed=None, dim_v=None):
    """Random inputs from a fixed seed (per case unless given); q, k, v scaled so outputs are O(1)."""
    if seed is None:
        seed = case_seed(batch, heads, length, dim, decay, str(dtype), init, dim_v)
    gen = torch.Generator().manual_seed(seed)
    dim_v = dim_v or dim
    q, k = (torch.randn(batch, heads, length, dim, generator=gen) / dim**0.25 for _ in range(2))
    v = torch.randn(batch, heads, length, dim_v, generator=gen) / dim**0.25
    log_a = DECAYS[decay]((batch, heads, length, dim), gen).float()
    s0 = torch.randn(batch, heads, dim, dim_v, generator=gen) if init else None
    return q.to(dtype), k.to(dtype), v.to(dtype), log_a, s0


def oracle(q, k, v, log_a, s0, reverse):
    """float64 naive scan on exactly the (possibly rounded) inputs the kernel saw."""
    return naive_liquid_scan(
        q.double(), k.double(), v.double(), log_a.double(),
        initial_state=None if s0 is None else s0.double(), reverse=reverse, output_final_state=True,
    )  # fmt: skip


def test_triton_is_installed_and_runs_in_the_interpreter():
    assert triton_available(), "triton is not installed (pip install triton): the triton backend cannot run"
    assert interpreter_enabled()


FORWARD_CASES = [  # (B, H, T, d, decay, dtype, reverse, init, chunk)
    (1, 1, 1, 16, "mixed", torch.float32, False, False, 64),
    (1, 2, 17, 32, "strong", torch.float32, False, True, 64),
    (2, 1, 65, 16, "weak", torch.float32, True, True, 64),
    (1, 2, 65, 16, "mixed", torch.float32, False, True, 32),  # 3 chunks: state carried across chunks
    (1, 1, 80, 16, "strong", torch.float32, True, False, 16),  # chunk == sub-block: diagonal blocks only
    (1, 2, 33, 24, "mixed", torch.float32, False, True, 32),  # d not a power of two: masked lanes
    (1, 2, 33, 32, "mixed", torch.bfloat16, False, True, 32),
    (1, 1, 17, 16, "strong", torch.float16, True, True, 64),
]


@pytest.mark.parametrize("B, H, T, d, decay, dtype, reverse, init, chunk", FORWARD_CASES)
def test_forward_matches_float64_oracle(B, H, T, d, decay, dtype, reverse, init, chunk):
    q, k, v, log_a, s0 = make_inputs(B, H, T, d, decay, dtype, init)
    o, final = triton_liquid_scan(
        q, k, v, log_a, initial_state=s0, reverse=reverse, output_final_state=True, chunk_size=chunk
    )
    o_ref, final_ref = oracle(q, k, v, log_a, s0, reverse)
    tol = FP32_TOL if dtype == torch.float32 else HALF_TOL
    assert o.dtype == dtype and o.shape == v.shape
    assert final.dtype == torch.float32 and final.shape == (B, H, d, d)
    assert rel_err(o, o_ref) <= tol
    assert rel_err(final, final_ref) <= tol


def test_final_state_is_none_unless_asked():
    q, k, v, log_a, _ = make_inputs(1, 1, 5, 16, "mixed")
    assert triton_liquid_scan(q, k, v, log_a)[1] is None


def test_empty_sequence_returns_the_initial_state():
    q, k, v, log_a, s0 = make_inputs(1, 2, 0, 16, "mixed", init=True)
    s0.requires_grad_()
    o, final = triton_liquid_scan(q, k, v, log_a, initial_state=s0, output_final_state=True)
    assert o.shape == (1, 2, 0, 16) and torch.equal(final, s0)
    final.sum().backward()
    assert torch.equal(s0.grad, torch.ones_like(s0))


def test_precision_safe_mode_matches_oracle_and_default():
    q, k, v, log_a, s0 = make_inputs(1, 1, 80, 16, "weak", init=True)
    o_ref, final_ref = oracle(q, k, v, log_a, s0, False)
    for safe in (True, False):
        o, final = triton_liquid_scan(
            q, k, v, log_a, initial_state=s0, output_final_state=True, precision_safe=safe, chunk_size=16
        )
        assert rel_err(o, o_ref) <= FP32_TOL
        assert rel_err(final, final_ref) <= FP32_TOL


def test_precision_safe_mode_compensates_the_carried_state():
    """A large state (1e3) absorbing tiny chunk contributions (~1e-3, no decay) over 5 chunks: plain fp32
    carrying loses about twice the error of the Kahan-compensated carry (deterministic inputs)."""
    gen = torch.Generator().manual_seed(7)
    q = torch.randn(1, 1, 80, 16, generator=gen)
    k, v = (0.03 * torch.rand(1, 1, 80, 16, generator=gen) for _ in range(2))
    log_a = torch.zeros(1, 1, 80, 16)
    s0 = 1000 + 10 * torch.rand(1, 1, 16, 16, generator=gen)
    _, want = oracle(q, k, v, log_a, s0, False)
    errors = {}
    for safe in (False, True):
        _, final = triton_liquid_scan(
            q, k, v, log_a, initial_state=s0, output_final_state=True, precision_safe=safe, chunk_size=16
        )
        errors[safe] = (final.double() - want).abs().mean().item()
    assert errors[True] <= 0.7 * errors[False], errors


GRAD_CASES = [  # (B, H, T, d, decay, dtype, reverse, init, final, chunk, safe)
    (1, 1, 1, 16, "mixed", torch.float32, False, True, True, 64, False),
    (1, 2, 17, 32, "strong", torch.float32, False, True, False, 64, False),
    (1, 2, 65, 16, "mixed", torch.float32, True, True, True, 32, False),
    (1, 1, 80, 16, "weak", torch.float32, False, True, True, 16, True),
    (1, 1, 40, 32, "mixed", torch.bfloat16, False, True, True, 32, False),
]


@pytest.mark.parametrize("B, H, T, d, decay, dtype, reverse, init, final, chunk, safe", GRAD_CASES)
def test_gradients_match_float64_autograd(B, H, T, d, decay, dtype, reverse, init, final, chunk, safe):
    inputs = make_inputs(B, H, T, d, decay, dtype, init)
    gen = torch.Generator().manual_seed(1234)
    d_o = torch.randn(B, H, T, d, generator=gen)
    d_final = torch.randn(B, H, d, d, generator=gen)

    def loss(o, s):
        return (o.double() * d_o.double()).sum() + ((s.double() * d_final.double()).sum() if final else 0.0)

    leaves = [x.clone().requires_grad_() if x is not None else None for x in inputs]
    o, s = triton_liquid_scan(
        *leaves[:4], initial_state=leaves[4], reverse=reverse, output_final_state=final,
        chunk_size=chunk, precision_safe=safe,
    )  # fmt: skip
    loss(o, s).backward()
    ref_leaves = [x.detach().double().requires_grad_() if x is not None else None for x in inputs]
    o_ref, s_ref = naive_liquid_scan(
        *ref_leaves[:4], initial_state=ref_leaves[4], reverse=reverse, output_final_state=final
    )
    loss(o_ref, s_ref).backward()
    tol = FP32_TOL if dtype == torch.float32 else HALF_TOL
    for name, got, ref in zip(("q", "k", "v", "log_a", "initial_state"), leaves, ref_leaves, strict=True):
        if got is None:
            continue
        assert got.grad is not None and got.grad.dtype == got.dtype, name
        assert rel_err(got.grad, ref.grad) <= tol, f"d{name}: {rel_err(got.grad, ref.grad):.2e}"


def test_gradient_through_final_state_only():
    """``o`` unused: the backward gets no output gradient (``None``) and must still be exact."""
    q, k, v, log_a, s0 = make_inputs(1, 1, 20, 16, "mixed", init=True)
    weight = torch.randn(s0.shape, dtype=torch.float64)
    leaves = [x.clone().requires_grad_() for x in (q, k, v, log_a, s0)]
    _, s = triton_liquid_scan(*leaves[:4], initial_state=leaves[4], output_final_state=True)
    (s.double() * weight).sum().backward()
    ref = [x.double().requires_grad_() for x in (q, k, v, log_a, s0)]
    _, s_ref = naive_liquid_scan(*ref[:4], initial_state=ref[4], output_final_state=True)
    (s_ref * weight).sum().backward()
    assert torch.equal(leaves[0].grad, torch.zeros_like(q)), "q only reaches o, which is unused"
    k_grad, v_grad, log_a_grad, s0_grad = (x.grad for x in leaves[1:])
    for got, want in zip((k_grad, v_grad, s0_grad), (ref[1].grad, ref[2].grad, ref[4].grad), strict=True):
        assert rel_err(got, want) <= FP32_TOL
    # d(log_a) comes from the q·dq − k·dk identity (README.md beside the kernels): with only a final-state
    # gradient, channels decayed at −20/step have true gradients ~1e-9 computed as differences of O(1) fp32
    # terms, so its fp32 error floor is ~1e-5 (seen up to 1.2e-5); 5e-5 still catches any real error.
    assert rel_err(log_a_grad, ref[3].grad) <= 5 * FP32_TOL


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_decode_chain_equals_the_scan(dtype):
    """Prefill with the scan, then decode token by token: outputs and final state equal one full scan."""
    q, k, v, log_a, s0 = make_inputs(1, 2, 24, 32, "mixed", dtype, init=True)
    o_full, final_full = triton_liquid_scan(q, k, v, log_a, initial_state=s0, output_final_state=True)
    prefix = 9
    o_pre, state = triton_liquid_scan(
        q[:, :, :prefix], k[:, :, :prefix], v[:, :, :prefix], log_a[:, :, :prefix],
        initial_state=s0, output_final_state=True,
    )  # fmt: skip
    outs = [o_pre]
    for t in range(prefix, q.shape[2]):
        o_t, new_state = triton_liquid_step(q[:, :, t], k[:, :, t], v[:, :, t], log_a[:, :, t], state)
        o_ref, state_ref = reference_liquid_step(q[:, :, t], k[:, :, t], v[:, :, t], log_a[:, :, t], state)
        assert o_t.dtype == dtype
        assert rel_err(new_state, state_ref) <= FP32_TOL
        assert rel_err(o_t, o_ref) <= (FP32_TOL if dtype == torch.float32 else HALF_TOL)
        outs.append(o_t.unsqueeze(2))
        state = new_state
    tol = FP32_TOL if dtype == torch.float32 else HALF_TOL
    assert rel_err(torch.cat(outs, dim=2), o_full) <= tol
    assert rel_err(state, final_full) <= FP32_TOL


def test_step_does_not_modify_the_input_state():
    q, k, v, log_a, s0 = make_inputs(1, 1, 1, 16, "mixed", init=True)
    before = s0.clone()
    triton_liquid_step(q[:, :, 0], k[:, :, 0], v[:, :, 0], log_a[:, :, 0], s0)
    assert torch.equal(s0, before)


def test_bad_inputs_raise_clear_errors():
    q, k, v, log_a, _ = make_inputs(1, 1, 4, 16, "mixed")
    with pytest.raises(ValueError, match=r"\[B, H, T, d\]"):
        triton_liquid_scan(q, k[:, :, :3], v, log_a)
    with pytest.raises(ValueError, match="initial_state"):
        triton_liquid_scan(q, k, v, log_a, initial_state=torch.zeros(1, 1, 16, 8))
    with pytest.raises(ValueError, match="multiple of 16"):
        triton_liquid_scan(q, k, v, log_a, chunk_size=24)
    with pytest.raises(TypeError, match="float32, bfloat16 or float16"):
        triton_liquid_scan(q.double(), k, v, log_a)
    with pytest.raises(ValueError, match="float32"):
        triton_liquid_step(q[:, :, 0], k[:, :, 0], v[:, :, 0], log_a[:, :, 0], torch.zeros(1, 1, 16, 16).double())


@pytest.mark.parametrize("block_v", [16, 64])
def test_value_columns_split_over_programs(monkeypatch, block_v):
    """dv ≠ dk, and (block_v = 16) value columns spread over 3 programs, the last one partly masked:
    forward, final state, all gradients (dq, dk summed over the programs' partials) and decode."""
    from liquid_memory.ops.triton_scan import launch

    monkeypatch.setattr(launch, "MAX_BLOCK_V", block_v)
    inputs = make_inputs(1, 1, 40, 32, "mixed", init=True, dim_v=40)
    leaves = [x.clone().requires_grad_() for x in inputs]
    o, s = triton_liquid_scan(*leaves[:4], initial_state=leaves[4], output_final_state=True, chunk_size=32)
    gen = torch.Generator().manual_seed(5)
    d_o, d_s = torch.randn(o.shape, generator=gen), torch.randn(s.shape, generator=gen)
    ((o * d_o).sum() + (s * d_s).sum()).backward()
    ref = [x.detach().double().requires_grad_() for x in inputs]
    o_ref, s_ref = naive_liquid_scan(*ref[:4], initial_state=ref[4], output_final_state=True)
    ((o_ref * d_o.double()).sum() + (s_ref * d_s.double()).sum()).backward()
    assert o.shape == (1, 1, 40, 40) and s.shape == (1, 1, 32, 40)
    assert rel_err(o, o_ref) <= FP32_TOL and rel_err(s, s_ref) <= FP32_TOL
    for name, got, want in zip(("q", "k", "v", "log_a", "initial_state"), leaves, ref, strict=True):
        assert rel_err(got.grad, want.grad) <= FP32_TOL, name
    q, k, v, log_a, s0 = (x.detach() for x in inputs)
    o_t, new_state = triton_liquid_step(q[:, :, 0], k[:, :, 0], v[:, :, 0], log_a[:, :, 0], s0)
    o_want, state_want = reference_liquid_step(q[:, :, 0], k[:, :, 0], v[:, :, 0], log_a[:, :, 0], s0)
    assert rel_err(o_t, o_want) <= FP32_TOL and rel_err(new_state, state_want) <= FP32_TOL


@pytest.mark.slow
def test_kernels_compile_for_a_real_gpu_target(tmp_path):
    """No GPU needed: Triton's bundled toolchain compiles every kernel to an sm_80 cubin (A100). The
    interpreter cannot catch compile errors or resource overruns; this does (within the shared-memory limit)."""
    env = {key: value for key, value in os.environ.items() if key != "TRITON_INTERPRET"}
    out = tmp_path / "compile.json"
    cmd = [sys.executable, "-m", "liquid_memory.ops.triton_scan.gpu_compile", "--dims", "32", "--archs", "80"]
    run = subprocess.run([*cmd, "--json", str(out)], env=env, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-3000:]
    rows = json.loads(out.read_text())
    assert {r["kernel"] for r in rows} == {"chunk_cumsum", "chunk_fwd", "chunk_bwd", "dlog_a", "step"}
    for r in rows:
        assert r["fits_shared"], r
        assert r["registers"] is not None and r["registers"] <= 255, r
