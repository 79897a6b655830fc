"""128K tokens: bf16 stays finite and within 1e-2 of fp32 (scan and layer), in linear memory."""

from __future__ import annotations

import copy

import torch

from liquid_memory import LiquidMemory
from liquid_memory.ops.cpp import cpp_liquid_scan
from liquid_memory.ops.naive import naive_liquid_scan
from tests.core.scan_cases import scan_inputs
from tests.numerics import rel_err

LONG = 131072


def test_cpp_scan_bf16_at_128k_tokens_matches_fp32_and_oracle(licensed):
    q, k, v, log_a = scan_inputs(1, 2, LONG, 64, dtype=torch.bfloat16, decay="mixed", seed=7)
    o_bf16, state_bf16 = cpp_liquid_scan(q, k, v, log_a, output_final_state=True)
    o_fp32, state_fp32 = cpp_liquid_scan(q.float(), k.float(), v.float(), log_a, output_final_state=True)
    assert o_bf16.dtype == torch.bfloat16
    assert rel_err(o_bf16, o_fp32) <= 1e-2 and rel_err(state_bf16, state_fp32) <= 1e-2
    # the fp32 result itself against the float64 oracle on the last 1K tokens (state carried exactly)
    tail = slice(LONG - 1024, LONG)
    _, head_state = naive_liquid_scan(
        *(t[:, :1, : LONG - 1024].double() for t in (q, k, v, log_a)), output_final_state=True
    )
    expected, _ = naive_liquid_scan(*(t[:, :1, tail].double() for t in (q, k, v, log_a)), initial_state=head_state)
    assert rel_err(o_fp32[:, :1, tail], expected) <= 1e-5


def test_layer_bf16_at_128k_tokens(licensed):
    """Same (bf16-representable) weights and input; the only difference is computing in bf16."""
    torch.manual_seed(0)
    module_bf16 = LiquidMemory(128, 2, batch_first=True).to(torch.bfloat16)
    module_fp32 = copy.deepcopy(module_bf16).float()
    x = torch.randn(1, LONG, 128, dtype=torch.bfloat16)
    with torch.inference_mode():
        out_bf16, _ = module_bf16(x, x, x, is_causal=True, need_weights=False)
        x32 = x.float()
        out_fp32, _ = module_fp32(x32, x32, x32, is_causal=True, need_weights=False)
    assert out_bf16.dtype == torch.bfloat16
    assert rel_err(out_bf16, out_fp32) <= 1e-2
