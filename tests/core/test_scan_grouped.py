"""The grouped-query C++ scan (``G`` query heads per KV head, inference) against the float64 sequential oracle on
the KV heads repeated ``G`` times — the arithmetic the hybrid's prefill ran before (``hf/hybrid.py``)."""

from __future__ import annotations

import pytest
import torch

from liquid_memory.ops.cpp import cpp_liquid_scan_grouped
from liquid_memory.ops.naive import naive_liquid_scan
from tests.core.test_scan_cpp import make_inputs
from tests.numerics import rel_err


@pytest.mark.parametrize(
    ("groups", "T", "d", "decay", "init", "dtype"),
    [(3, 200, 32, "mixed", True, torch.float32), (2, 65, 24, "strong", False, torch.float32),
     (3, 130, 128, "weak", True, torch.float32), (1, 70, 64, "mixed", True, torch.float32),
     (3, 100, 32, "mixed", True, torch.bfloat16)],
)  # fmt: skip
def test_grouped_scan_equals_repeated_heads_oracle(groups, T, d, decay, init, dtype):
    _, k, v, la, s0 = make_inputs(2, 2, T, d, decay, dtype=dtype, seed=T + d, init=init)
    q = make_inputs(2, 2 * groups, T, d, decay, dtype=dtype, seed=T + d + 1)[0]
    o, final = cpp_liquid_scan_grouped(q, k, v, la, initial_state=s0)

    def rep(x):
        return None if x is None else x.double().repeat_interleave(groups, dim=1)

    want_o, want_final = naive_liquid_scan(q.double(), rep(k), rep(v), rep(la), initial_state=rep(s0),
                                           output_final_state=True)  # fmt: skip
    tol = 1e-5 if dtype == torch.float32 else 2e-2
    assert o.shape == q.shape and o.dtype == dtype and final.shape == (2, 2, d, d)
    assert rel_err(o, want_o) < tol
    assert rel_err(final, want_final[:, ::groups]) < 1e-5


def test_grouped_scan_refuses_heads_that_do_not_divide():
    q, k, v, la, _ = make_inputs(1, 3, 8, 8)
    with pytest.raises(RuntimeError, match="not a multiple of KV heads"):
        cpp_liquid_scan_grouped(q, k[:, :2], v[:, :2], la[:, :2])
