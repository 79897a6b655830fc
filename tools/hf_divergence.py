"""Where and why the linearized hybrid's greedy continuation leaves the original's (benchmark prompts).

For each of the benchmark's greedy-agreement prompts: the original's greedy continuation is scored by both
models teacher-forced (prompt + the original's 32 tokens). Until the hybrid's argmax first differs from the
original's token, the two greedy generations are identical, so that position is exactly where generation
diverges. Reports the per-token top-1 agreement on the original's own path, the first divergence, and the
original's probability margin (top-1 minus top-2) there — a near-tie diverges on any small error.

    OMP_NUM_THREADS=1 LM_PRIVATE_KEY=... python tools/hf_divergence.py DIR
"""

from __future__ import annotations

import json
import statistics
import sys

import torch

from liquid_memory.hf.bench import greedy_tokens
from liquid_memory.hf.io import from_pretrained
from liquid_memory.hf.smollm import essay_token_ids, load_smollm2

PROMPTS, PROMPT_LEN, NEW = 20, 192, 32  # the benchmark's defaults (hf/bench.py)


@torch.no_grad()
def main() -> None:
    torch.set_num_threads(1)
    original, tok = load_smollm2()
    hybrid = from_pretrained(sys.argv[1])[0]
    ids = essay_token_ids(tok, "heldout")
    stride = (len(ids) - PROMPT_LEN) // PROMPTS
    rows = []
    for i in range(PROMPTS):
        prompt = ids[i * stride : i * stride + PROMPT_LEN]
        ref = torch.tensor(greedy_tokens(original, prompt, NEW))
        seq = torch.cat([prompt, ref])[None]
        p_orig = torch.softmax(original(input_ids=seq, use_cache=False).logits[0, PROMPT_LEN - 1 : -1].float(), -1)
        h_arg = hybrid(input_ids=seq, use_cache=False).logits[0, PROMPT_LEN - 1 : -1].argmax(-1)
        same = h_arg == ref
        first = int((~same).nonzero()[0]) if not bool(same.all()) else NEW
        top2 = p_orig.topk(2, -1).values
        margin = (top2[:, 0] - top2[:, 1]).tolist()
        rows.append({"top1_on_path": same.float().mean().item(), "first_divergence": first,
                     "margin_at_divergence": margin[first] if first < NEW else None,
                     "median_margin": statistics.median(margin)})  # fmt: skip
        print(i, json.dumps({k: round(v, 3) if isinstance(v, float) else v for k, v in rows[-1].items()}), flush=True)
    margins = [r["margin_at_divergence"] for r in rows if r["margin_at_divergence"] is not None]
    summary = {
        "top1_on_path_mean": statistics.mean(r["top1_on_path"] for r in rows),
        "first_divergence_median": statistics.median(r["first_divergence"] for r in rows),
        "margin_at_divergence_median": statistics.median(margins),
        "divergences_with_margin_below_0.1": sum(m < 0.1 for m in margins),
        "divergences": len(margins),
        "median_margin_all_positions": statistics.median(r["median_margin"] for r in rows),
    }
    print("SUMMARY", json.dumps(summary), flush=True)


if __name__ == "__main__":
    main()
