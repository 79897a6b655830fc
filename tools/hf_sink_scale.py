"""Why sink keys help the hybrid (window 64) but not window 0: how far one β per head is from each query.

With an exact part (window and/or sink keys) the output mixes the exact softmax mass with the liquid mass
scaled by ``e^{β_h}``, one constant per head (README_INTEGRATION.md §8.1). For each query the β that would
give the liquid part exactly the softmax's mass on its older non-sink keys is
``LiquidHybridAttention.log_mass_ratio``; this tool reports, per layer of a linearized DIR, on the first 2048
held-out tokens (the original model's hidden states as every layer's input): the original attention's mean
share on the sink keys (the first ``sinks`` tokens) and on the keys the recurrence must carry, the spread of
the per-query β (interquartile range, nats) and the share of queries whose own β is more than 1 nat (a factor
e) from the trained ``β_h``.

    OMP_NUM_THREADS=1 LM_PRIVATE_KEY=... python tools/hf_sink_scale.py DIR [DIR ...]
"""

from __future__ import annotations

import json
import statistics
import sys

import torch

from liquid_memory.hf.io import from_pretrained
from liquid_memory.hf.smollm import essay_token_ids, load_smollm2

LENGTH = 2048


@torch.no_grad()
def layer_inputs(model, ids: torch.Tensor) -> list[tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]]:
    """Every decoder layer's attention input (hidden states after its input norm, RoPE cos/sin)."""
    seen = []

    def grab(module, args, kwargs):
        seen.append((kwargs["hidden_states"], kwargs["position_embeddings"]))

    hooks = [layer.self_attn.register_forward_pre_hook(grab, with_kwargs=True) for layer in model.model.layers]
    model(input_ids=ids[None], use_cache=False)
    for h in hooks:
        h.remove()
    return seen


@torch.no_grad()
def masses(attn, hidden, pe) -> tuple[float, float]:
    """The original softmax attention's mean share on the sink keys and on the keys the recurrence carries."""
    q, k, _ = attn._project(hidden, pe)
    kk = k.repeat_interleave(attn.num_heads // attn.num_kv_heads, dim=1)
    t = hidden.shape[1]
    scores = torch.einsum("bhtd,bhsd->bhts", q.float(), kk.float()) * attn.scaling
    causal = torch.ones(t, t, dtype=torch.bool).tril()
    p = scores.masked_fill(~causal, float("-inf")).softmax(-1)[:, :, attn.window + attn.sinks :]
    pos = torch.arange(t)
    rows = pos[attn.window + attn.sinks :, None]
    liquid = (pos[None, :] <= rows - attn.window) & (pos[None, :] >= attn.sinks)
    return p[..., : attn.sinks].sum(-1).mean().item(), (p * liquid).sum(-1).mean().item()


def main() -> None:
    torch.set_num_threads(1)
    original, tok = load_smollm2()
    ids = essay_token_ids(tok, "heldout")[:LENGTH]
    inputs = layer_inputs(original, ids)
    for path in sys.argv[1:]:
        model = from_pretrained(path)[0]
        rows = []
        for idx, layer in enumerate(model.model.layers):
            attn = layer.self_attn
            hidden, pe = inputs[idx]
            ratio = attn.log_mass_ratio(hidden, pe)  # [H, N]
            beta = attn.liquid.mix_log_scale.detach()[:, None]
            q25, q75 = ratio.quantile(0.25, dim=1), ratio.quantile(0.75, dim=1)
            sink, carried = masses(attn, hidden, pe)
            far = ((ratio - beta).abs() > 1).float().mean().item()
            iqr = (q75 - q25).mean().item()
            rows.append({"layer": idx, "sink_share": round(sink, 3), "liquid_share": round(carried, 3),
                         "beta_iqr_nats": round(iqr, 2), "queries_beyond_1_nat": round(far, 3)})  # fmt: skip
            print(path, json.dumps(rows[-1]), flush=True)
        summary = {k: round(statistics.mean(r[k] for r in rows), 3) for k in rows[0] if k != "layer"}
        print("SUMMARY", path, f"window={attn.window} sinks={attn.sinks}", json.dumps(summary), flush=True)


if __name__ == "__main__":
    main()
