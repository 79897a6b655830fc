"""Inference-only probe: a hybrid trained with window W evaluated with a wider exact window (no re-linearization).

The window is structural (exact softmax over the last W keys, the recurrence delayed by W for older ones), so a
trained DIR can be run at any window: the feature maps and decays act per token, only the per-head mixing scale
β_h was calibrated and trained for the trained window's split of the attention mass. For each window in
``--windows`` the probe scores the model as trained (β as stored) and, with ``--recalibrate``, with β_h re-set by
the product's own calibration (``LiquidHybridAttention.calibrate``: median log mass ratio) on the first
``--calib-seqs`` training sequences of 2048 tokens, layer by layer inside one forward pass (each layer sees the
inputs its recalibrated predecessors produce). Figures, on the benchmark's data (hf/bench.py defaults):
held-out perplexity at 2048 (the first 2 × 2048 held-out tokens, as ``bench --hf``), greedy agreement (20
prompts × 32 tokens, ``agreement_shares``) and the teacher-forced top-1 on the original's greedy path.
Mind the prompt length: a prompt + continuation no longer than window + 1 never reaches the recurrence (every key
is an exact window key), so with the benchmark's 192 + 32 tokens window 256 scores the merged LoRA weights with exact
attention only; ``--prompt-len 1024`` makes the recurrence carry most keys at every window probed.
``--decode-context N`` instead adds to ``--out`` the decode-state bytes and per-token time (``bench --hf``'s
``decode_timing``, cache made as there) at context N for each window — what a wider window costs at decode.

    LM_PRIVATE_KEY_FILE=... OMP_NUM_THREADS=1 python tools/hf_window_probe.py DIR --windows 64,128,256 \
        --recalibrate --out results/hf_smollm2/window_probe.json
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import torch

from liquid_memory.hf.bench import (
    _liquid_cache,
    _path_logits,
    _prompts,
    _top1_share,
    agreement_shares,
    decode_timing,
    greedy_tokens,
    perplexity,
)
from liquid_memory.hf.io import from_pretrained
from liquid_memory.hf.linearization import patched_layers
from liquid_memory.hf.smollm import essay_token_ids, load_smollm2


def set_window(model: Any, window: int) -> None:
    """Every patched layer (and the model's record, which the decode cache reads) to ``window``."""
    for attn in patched_layers(model):
        attn.window = window
    model.liquid_window = window


@torch.no_grad()
def recalibrate(model: Any, seqs: torch.Tensor) -> None:
    """β_h of every layer re-set by ``calibrate`` on its own input, in one forward pass over ``seqs``."""

    def hook(attn: Any, args: tuple, kwargs: dict) -> None:
        attn.calibrate(kwargs["hidden_states"], kwargs["position_embeddings"])

    handles = [a.register_forward_pre_hook(hook, with_kwargs=True) for a in patched_layers(model)]
    try:
        model.model(input_ids=seqs, use_cache=False)
    finally:
        for h in handles:
            h.remove()


def betas(model: Any) -> list[float]:
    return [a.liquid.mix_log_scale.mean().item() for a in patched_layers(model)]


@torch.no_grad()
def score(model: Any, ids: torch.Tensor, prompts: list, reference: list, new_tokens: int) -> dict[str, Any]:
    t0 = time.process_time()
    row: dict[str, Any] = {"ppl_2048": perplexity(model, ids, 2048, 4096)["ppl"]}
    row["greedy_agreement"] = agreement_shares(model, prompts, reference, new_tokens)
    hits = [_top1_share(_path_logits(model, p, ref)[0], ref) for p, ref in zip(prompts, reference, strict=True)]
    row["top1_on_greedy_path"] = sum(hits) / len(hits)
    row["cpu_s"] = time.process_time() - t0
    return row


def decode_rows(model: Any, ids: torch.Tensor, windows: list[int], context: int, steps: int) -> dict[str, Any]:
    rows = {}
    for window in windows:
        set_window(model, window)
        rows[str(window)] = decode_timing(model, _liquid_cache(model, ids[:512], context), context, steps)
        print("decode window", window, rows[str(window)], flush=True)
    return {"context": context, "steps": steps, "by_window": rows}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("dir")
    p.add_argument("--windows", default="64,128,256")
    p.add_argument("--recalibrate", action="store_true", help="also score each wider window with β re-calibrated")
    p.add_argument("--calib-seqs", type=int, default=1)
    p.add_argument("--prompts", type=int, default=20)
    p.add_argument("--prompt-len", type=int, default=192)
    p.add_argument("--new-tokens", type=int, default=32)
    p.add_argument("--decode-context", type=int, help="only measure decode state/time at this context, into --out")
    p.add_argument("--decode-steps", type=int, default=16)
    p.add_argument("--out", required=True)
    args = p.parse_args()
    torch.manual_seed(0)
    torch.set_num_threads(1)
    windows = [int(w) for w in args.windows.split(",")]
    if args.decode_context:
        model, tok = from_pretrained(args.dir)
        out = Path(args.out)
        result = json.loads(out.read_text(encoding="utf-8")) if out.is_file() else {"dir": args.dir}
        ids = essay_token_ids(tok, "heldout")
        result["decode"] = decode_rows(model, ids, windows, args.decode_context, args.decode_steps)
        out.write_text(json.dumps(result, indent=1) + "\n", encoding="utf-8")
        return
    original, tok = load_smollm2()
    ids = essay_token_ids(tok, "heldout")
    prompts = _prompts(ids, args)
    reference = [greedy_tokens(original, q, args.new_tokens) for q in prompts]
    original_ppl = perplexity(original, ids, 2048, 4096)["ppl"]
    del original
    model = from_pretrained(args.dir)[0]
    trained_window, stored = model.liquid_window, {a: a.liquid.mix_log_scale.clone() for a in patched_layers(model)}
    train = essay_token_ids(tok, "train")[: 2048 * args.calib_seqs].reshape(args.calib_seqs, 2048)
    result: dict[str, Any] = {"dir": args.dir, "trained_window": trained_window, "original_ppl_2048": original_ppl,
                              "prompts": args.prompts, "new_tokens": args.new_tokens, "rows": {}}  # fmt: skip
    for window in windows:
        variants = ["stored_beta"] + (["recalibrated_beta"] if args.recalibrate and window != trained_window else [])
        for variant in variants:
            with torch.no_grad():
                for attn, beta in stored.items():
                    attn.liquid.mix_log_scale.copy_(beta)
            set_window(model, window)
            if variant == "recalibrated_beta":
                recalibrate(model, train)
            row = score(model, ids, prompts, reference, args.new_tokens)
            row["ppl_ratio_2048"] = row["ppl_2048"] / original_ppl
            row["beta_mean_per_layer"] = betas(model)
            key = f"window_{window}_{variant}"
            result["rows"][key] = row
            short = {k: round(v, 4) for k, v in row.items() if isinstance(v, float)}
            print(key, short, "agreement", round(row["greedy_agreement"]["mean"], 4), flush=True)
            Path(args.out).write_text(json.dumps(result, indent=1) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
