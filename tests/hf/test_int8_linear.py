"""The C++ weight-only int8 matmul (``int8_linear``, csrc/int8_linear.cpp) against a float64 reference, and
``Int8Linear``'s choice between it and torch's int8 kernel (licence, backend, dtype, rows)."""

from __future__ import annotations

import pytest
import torch

import liquid_memory.hf.weights as weights
import liquid_memory.ops.cpp  # noqa: F401  (loads the extension: registers torch.ops.liquid_memory.*)
from liquid_memory.errors import LicenseMissing
from liquid_memory.hf.weights import Int8Linear, quantize_int8
from tests.numerics import rel_err

# fp32 x: only fp32 summation rounds (measured ≈ 2e-7); bf16 x: the output is rounded to bf16 (measured ≈ 2e-3)
TOLERANCE = {torch.float32: 1e-5, torch.bfloat16: 5e-3}


def _case(m, n, k, *, seed=0, scale_dtype=torch.bfloat16):
    g = torch.Generator().manual_seed(seed + 1000 * m + n + k)
    x = torch.randn(m, k, generator=g)
    q = torch.randint(-127, 128, (n, k), generator=g, dtype=torch.int8)
    scale = (torch.rand(n, generator=g) * 0.02 + 1e-3).to(scale_dtype)
    bias = torch.randn(n, generator=g)
    return x, q, scale, bias


def _reference(x, q, scale, bias):
    """float64 ``x @ (q · scale)ᵀ + bias`` (x as given: a bf16 x is compared with its own values)."""
    y = x.double() @ (q.double() * scale.double()[:, None]).T
    return y if bias is None else y + bias.double()


@pytest.mark.parametrize("portable", [False, True], ids=["avx512-if-present", "portable"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize(
    ("m", "n", "k", "with_bias"),
    [(1, 64, 576, False), (1, 37, 61, True), (16, 45, 100, True), (16, 8, 16, False), (3, 13, 7, True),
     (5, 19, 33, False), (2, 9, 24, True)],
)  # fmt: skip
def test_op_equals_float64_reference(m, n, k, with_bias, dtype, portable):
    """K not a multiple of 16 or 8 (masked / scalar tails), N not a multiple of any tile, every x-row group
    (4 + remainders of 1, 2, 3). ``portable=False`` takes AVX-512 where the CPU has it (this machine does; on
    one without, both parametrizations run the portable path)."""
    x, q, scale, bias = _case(m, n, k)
    x = x.to(dtype)
    b = bias if with_bias else None
    y = torch.ops.liquid_memory.int8_linear(x, q, scale, b, portable)
    assert y.dtype == dtype and y.shape == (m, n)
    assert rel_err(y, _reference(x, q, scale, b)) < TOLERANCE[dtype]


def test_fp32_scale_and_paths_agree():
    """A float32 scale is read as such; the AVX-512 and the portable path agree to fp32 summation order."""
    x, q, scale, bias = _case(4, 30, 90, scale_dtype=torch.float32)
    fast = torch.ops.liquid_memory.int8_linear(x, q, scale, bias, False)
    portable = torch.ops.liquid_memory.int8_linear(x, q, scale, bias, True)
    assert rel_err(fast, _reference(x, q, scale, bias)) < 1e-5
    assert rel_err(fast, portable) < 1e-5


@pytest.mark.parametrize("portable", [False, True])
def test_nan_in_a_row_reaches_exactly_its_outputs(portable):
    """A NaN in x row 1 (in the masked tail columns too) makes row 1's outputs NaN and leaves the others alone."""
    x, q, scale, bias = _case(3, 21, 40)
    x[1, 37] = float("nan")
    y = torch.ops.liquid_memory.int8_linear(x, q, scale, bias, portable)
    assert torch.isnan(y[1]).all()
    keep = torch.tensor([0, 2])
    assert rel_err(y[keep], _reference(x[keep], q, scale, bias)) < 1e-5
    with pytest.raises(AssertionError, match="NaN"):
        rel_err(y, _reference(x.nan_to_num(), q, scale, bias))


def test_bad_inputs_are_refused():
    x, q, scale, _ = _case(2, 8, 16)
    op = torch.ops.liquid_memory.int8_linear
    with pytest.raises(RuntimeError, match="K = 16 columns"):
        op(x, q[:, :8].contiguous(), scale, None)
    with pytest.raises(RuntimeError, match="contiguous int8"):
        op(x, q.t(), scale, None)
    with pytest.raises(RuntimeError, match="float32 or bfloat16"):
        op(x.double(), q, scale, None)
    with pytest.raises(RuntimeError, match="scale"):
        op(x, q, scale[:4], None)


def _linear(k=48, n=40, bias=True):
    linear = torch.nn.Linear(k, n, bias=bias)
    with torch.no_grad():
        linear.weight.copy_(torch.randn(n, k, generator=torch.Generator().manual_seed(3)) * 0.1)
    return linear


def _spy(monkeypatch):
    """Record whether each ``Int8Linear`` call got the compiled op from the getter."""
    real, found = weights.int8_linear_kernel, []

    def getter(*args, **kwargs):
        kernel = real(*args, **kwargs)
        found.append(kernel is not None)
        return kernel

    monkeypatch.setattr(weights, "int8_linear_kernel", getter)
    return found


def test_module_takes_the_op_for_decode_rows_in_fp32(monkeypatch, licensed):
    """Licensed, fp32 activations: the op, no bf16 round trip (fp32 accuracy against the dequantised weight);
    more than SMALL_BATCH_ROWS rows: the bf16 GEMM, no op."""
    found = _spy(monkeypatch)
    module = Int8Linear(_linear())
    dequantized = module.qweight.double() * module.scale.double()[:, None]
    x = torch.randn(2, 3, 48, generator=torch.Generator().manual_seed(4))
    with torch.no_grad():
        y = module(x)
        many = module(torch.randn(1, weights.SMALL_BATCH_ROWS + 1, 48))
    assert found == [True] and y.dtype == torch.float32 and y.shape == (2, 3, 40) and many.shape[1] == 17
    assert rel_err(y, x.double() @ dequantized.T + module.bias.double()) < 1e-6
    with torch.no_grad():
        y16 = module(x.bfloat16())
    assert y16.dtype == torch.bfloat16 and rel_err(y16, y) < TOLERANCE[torch.bfloat16]


def test_module_reference_backend_and_grad_mode_take_torch_kernel(monkeypatch, licensed):
    found = _spy(monkeypatch)
    module = Int8Linear(_linear(bias=False), backend="reference")
    x = torch.randn(1, 48, generator=torch.Generator().manual_seed(5))
    with torch.no_grad():
        reference = module(x)
    module.backend = None
    with torch.no_grad():
        compiled = module(x)
    graded = module(x)  # grad mode: the op has no autograd, torch's kernel runs
    assert found == [False, True, False]
    assert rel_err(compiled, reference) < 1e-2  # torch's kernel rounds x and y to bf16
    assert torch.equal(graded, reference)


def test_module_without_a_licence_refuses_unless_reference(monkeypatch):
    from liquid_memory.licensing import reset_cache

    for var in ("LM_PRIVATE_KEY", "LM_PRIVATE_KEY_FILE", "LM_BACKEND"):
        monkeypatch.delenv(var, raising=False)
    reset_cache()
    module = Int8Linear(_linear())
    x = torch.randn(1, 48)
    with torch.no_grad(), pytest.raises(LicenseMissing):
        module(x)
    monkeypatch.setenv("LM_BACKEND", "reference")
    with torch.no_grad():
        assert torch.isfinite(module(x)).all()
    reset_cache()


def test_module_under_torch_compile_matches_eager(licensed):
    """Under torch.compile the getter returns None: torch's int8 kernel is traced (no licence inside a graph)."""
    module = Int8Linear(_linear())
    x = torch.randn(1, 48, generator=torch.Generator().manual_seed(6))
    with torch.no_grad():
        eager = module(x)
        compiled = torch.compile(module, backend="aot_eager")(x)
    assert rel_err(compiled, eager) < 1e-2


def test_quantize_then_op_close_to_the_float_weight():
    """End to end: an fp32 weight quantised per row and multiplied by the op stays within int8 rounding."""
    w = torch.randn(70, 50, generator=torch.Generator().manual_seed(7)) * 0.05
    q, scale = quantize_int8(w)
    x = torch.randn(1, 50, generator=torch.Generator().manual_seed(8))
    y = torch.ops.liquid_memory.int8_linear(x, q, scale, None)
    assert rel_err(y, x.double() @ w.double().T) < 1e-2
