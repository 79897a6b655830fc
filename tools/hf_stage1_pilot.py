"""Stage-1 pilot for ``liquid_memory.hf``: a few SmolLM2 layers, several settings, held-out relative MSE.

Used to choose the ``LinearizeConfig`` defaults (README_INTEGRATION.md §8.5). Each variant trains fresh
``LiquidHybridAttention`` modules on cached inputs of the chosen layers (training split) and reports the
relative MSE ``‖out − softmax‖² / ‖softmax‖²`` on one held-out 2048- and 4096-token sequence.

    OMP_NUM_THREADS=1 LM_PRIVATE_KEY_FILE=.lm-demo.key python tools/hf_stage1_pilot.py \\
        '[{"tag": "s4_L2048", "sinks": 4, "seq": 2048, "steps": 64, "lr": 0.01}]' 4,14,18,23
Variant keys: tag, sinks, seq (training length), steps, lr, warmup, mhl (max initial half-life), window (64),
qbeta (false: one β per head; true: β_h + a linear function of the layer's input per query, zero-initialised, trained
with the rest — the per-query scale that window 0 + sinks lacks, results/hf_smollm2/window0_sinks.txt), qbeta_lr
(that map's learning rate, default lr), nseq (training sequences of ``seq`` tokens, default 16384 // seq; the
first nseq of the training split, so a smaller set is a prefix of a larger one), fit_heldout (true: train on the
held-out 2048-token sequence itself — an oracle fit whose error bounds what the mixer can represent at that
optimisation budget, i.e. capacity rather than data).
Besides the held-out error it prints ``train``: the relative MSE after training on the first 8 training sequences
(no grad; the same sequences for every nseq ≥ 8), so train vs held-out separates a generalisation gap from a
fit (capacity / optimisation) limit.
"""

from __future__ import annotations

import json
import math
import sys
import time

import torch
from torch import nn

from liquid_memory.hf.attention import LiquidHybridAttention
from liquid_memory.hf.smollm import essay_token_ids, load_smollm2

TRAIN_TOKENS = 16384
EVAL_LENGTHS = (2048, 4096)
TRAIN_EVAL_SEQS = 8  # the training error is measured on the first 8 training sequences


class QueryBeta(LiquidHybridAttention):
    """β per query: ``β_h + W_h x_t`` (``W`` zero at the start, so it starts as the per-head calibrated β)."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.liquid.query_beta = nn.Linear(self.config.hidden_size, self.num_heads, bias=False)
        nn.init.zeros_(self.liquid.query_beta.weight)

    def mix_scale(self, hidden: torch.Tensor) -> torch.Tensor:
        extra = self.liquid.query_beta(hidden.float()).transpose(1, 2)  # [B, H, T]
        return self.liquid.mix_log_scale[None, :, None] + extra


def main() -> None:
    torch.set_num_threads(1)
    variants = json.loads(sys.argv[1])
    layers = [int(x) for x in (sys.argv[2] if len(sys.argv) > 2 else "4,14,18,23").split(",")]
    model, tok = load_smollm2()
    for p in model.parameters():
        p.requires_grad_(False)
    tr, he = essay_token_ids(tok, "train"), essay_token_ids(tok, "heldout")

    def inputs(ids: torch.Tensor) -> list[torch.Tensor]:
        with torch.no_grad():
            hs = model(ids, output_hidden_states=True, use_cache=False).hidden_states
            return [model.model.layers[i].input_layernorm(hs[i]) for i in layers]

    caches = {}
    for seq in sorted({v["seq"] for v in variants}):
        nmax = max(max(v.get("nseq", TRAIN_TOKENS // seq), TRAIN_EVAL_SEQS) for v in variants if v["seq"] == seq)
        xs = [inputs(tr[i * seq : (i + 1) * seq][None]) for i in range(nmax)]
        caches[seq] = [torch.cat([x[j] for x in xs]) for j in range(len(layers))]
    evals = {n: inputs(he[:n][None]) for n in EVAL_LENGTHS}
    inner = model.model

    def pe(n: int):
        return inner.rotary_emb(evals[EVAL_LENGTHS[0]][0][:, :1], position_ids=torch.arange(n)[None])

    for v in variants:
        gen = torch.Generator().manual_seed(0)
        torch.manual_seed(0)
        res, trains = {}, {}
        for j, li in enumerate(layers):
            cls = QueryBeta if v.get("qbeta") else LiquidHybridAttention
            window, sinks = v.get("window", 64), v.get("sinks", 0)
            attn = cls(inner.layers[li].self_attn, window, sinks=sinks, max_half_life=v.get("mhl"))
            seq = v["seq"]
            xall = caches[seq][j]
            with torch.no_grad():
                tall = torch.cat([attn.softmax_forward(xall[i : i + 1], pe(seq), None) for i in range(len(xall))])
                etg = {n: attn.softmax_forward(e[j], pe(n), None) for n, e in evals.items()}
            nseq = v.get("nseq", TRAIN_TOKENS // seq)
            x, tgt = xall[:nseq], tall[:nseq]
            if v.get("fit_heldout"):  # oracle: the held-out sequence is the training set
                seq = EVAL_LENGTHS[0]
                x, tgt = evals[seq][j], etg[seq]
            attn.calibrate(x[:4], pe(seq))
            extra = list(attn.liquid.query_beta.parameters()) if v.get("qbeta") else []
            rest = [p for p in attn.liquid.parameters() if all(p is not e for e in extra)]
            groups = [{"params": rest}] + ([{"params": extra, "lr": v.get("qbeta_lr", v["lr"])}] if extra else [])
            opt = torch.optim.Adam(groups, lr=v["lr"])
            warm, steps = v.get("warmup", 0), v["steps"]

            def factor(s: int, warm: int = warm, steps: int = steps) -> float:
                return (s + 1) / warm if s < warm else 0.5 * (1 + math.cos(math.pi * (s - warm) / max(1, steps - warm)))

            sched = torch.optim.lr_scheduler.LambdaLR(opt, factor)
            t1, losses = time.process_time(), []
            for _ in range(steps):
                i = torch.randint(len(x), (1,), generator=gen)
                loss = nn.functional.mse_loss(attn(x[i], position_embeddings=pe(seq))[0], tgt[i]) / tgt[i].pow(2).mean()
                opt.zero_grad()
                loss.backward()
                opt.step()
                sched.step()
                losses.append(loss.item())
            with torch.no_grad():
                xe, te = xall[:TRAIN_EVAL_SEQS], tall[:TRAIN_EVAL_SEQS]
                pe_tr = pe(v["seq"])
                err = sum(
                    (attn(xe[i : i + 1], position_embeddings=pe_tr)[0] - te[i : i + 1]).pow(2).sum()
                    for i in range(len(xe))
                )
                train_err = trains[li] = round((err / te.pow(2).sum()).item(), 4)
                res[li] = {
                    n: round(
                        (
                            (attn(e[j], position_embeddings=pe(n))[0] - etg[n]).pow(2).mean() / etg[n].pow(2).mean()
                        ).item(),
                        4,
                    )
                    for n, e in evals.items()
                }
            print(v["tag"], li, res[li], "train", train_err, "train(last 8)", round(sum(losses[-8:]) / 8, 4),
                  "cpu/step", round((time.process_time() - t1) / steps, 3), flush=True)  # fmt: skip
        mean = {n: round(sum(r[n] for r in res.values()) / len(res), 4) for n in EVAL_LENGTHS}
        train_mean = round(sum(trains.values()) / len(trains), 4)
        print("SUMMARY", json.dumps(v), "mean held-out relative MSE", mean, "mean train", train_mean, flush=True)


if __name__ == "__main__":
    main()
