"""Stage-2 pilot for ``liquid_memory.hf``: which LoRA / distillation recipe moves greedy agreement.

Used to choose the stage-2 ``LinearizeConfig`` defaults (README_INTEGRATION.md §8.5). Every variant starts from
the same stage-1 parameters (``STAGE1/params.safetensors`` of a ``linearize --lora-steps 0`` run), trains stage 2
on the training essays and, every ``eval_every`` steps, reports on held-out text:
- ``kl``: mean KL(original ‖ patched) per token and ``top1``: share of positions whose argmax equals the
  original's, teacher-forced on two 512-token held-out windows;
- ``onpath``: teacher-forced top-1 agreement on the original's own greedy path — the original's 32 greedy
  tokens after each of 20 held-out prompts placed half-way between the benchmark's 20 prompts (so the
  benchmark's prompts are not used to choose); greedy generation stays identical exactly as long as these agree,
  so this is the low-noise proxy of greedy agreement (640 positions instead of 20 first divergences);
- ``agree``: greedy agreement (share of the first 32 greedy tokens equal to the original's) on those 20 prompts
  (session 3's pilots used the first 8 of every other one);
- at the end ``ppl2048_ratio``: held-out perplexity at 2048 (the benchmark's 2 windows) over the original's.

    OMP_NUM_THREADS=1 LM_PRIVATE_KEY=... python tools/hf_stage2_pilot.py STAGE1_DIR \\
        '[{"tag": "base", "steps": 96, "lr": 1e-3}]'
Variant keys: tag, steps, seq (512), lr (1e-3), rank (8), alpha (2·rank), targets ("attn" | "attn_mlp"),
stop (steps: run only the first ``stop`` steps of the ``steps``-step lr schedule), liquid (train the liquid
parameters too, true), loss ("kl" | "rkl" | "kl_ce"), ce_weight (kl_ce: weight of the
cross-entropy on the original's argmax, 1.0), temp (1.0: the KL target is softmax(teacher logits / temp);
< 1 sharpens it towards the argmax), gen (0: sequence-level distillation — the last ``gen`` tokens of every
training sequence are replaced by the original's own greedy continuation of the tokens before them, generated
once and cached in GEN_CACHE, so stage 2 also sees the text the agreement metric is measured on), gen_from
("original" | "student": on-policy distillation — the continuation is the student's own greedy one), eval_every (24:
teacher-forced kl/top1/onpath; greedy agreement at the end, and at step 0 if greedy0); or {"tag", "from": DIR}:
evaluate a finished ``linearize`` DIR only. A variant's ``stage1`` key (a folder holding params.safetensors)
replaces STAGE1_DIR for that variant; ``{"tag", "steps": 1, "stop": 0, "greedy0": true}`` scores a stage-1 result
alone (kl/top1/onpath/agree and ppl2048_ratio, no LoRA step).
"""

from __future__ import annotations

import copy
import json
import math
import os
import random
import sys
import time

import torch

from liquid_memory.hf.bench import greedy_tokens, perplexity
from liquid_memory.hf.config import LORA_TARGET_SETS
from liquid_memory.hf.io import from_pretrained
from liquid_memory.hf.patch import liquid_parameters, patch_model
from liquid_memory.hf.smollm import essay_token_ids, load_smollm2

ORIGINAL_PPL_2048 = 16.241777860415127  # results/hf_smollm2/hf_smollm2.json, perplexity.original.2048
GEN_CACHE = os.environ.get("GEN_CACHE", "/tmp/issue7s4/gen_cache.pt")  # the original's continuations (variant gen)


def loss_fn(kind: str, student: torch.Tensor, teacher: torch.Tensor, ce_weight: float, temp: float = 1.0):
    log_p = torch.log_softmax(teacher.float() / temp, -1)
    log_q = torch.log_softmax(student.float(), -1)
    if kind == "rkl":
        return (log_q.exp() * (log_q - log_p)).sum(-1).mean()
    kl = (log_p.exp() * (log_p - log_q)).sum(-1).mean()
    if kind == "kl_ce":
        return kl + ce_weight * torch.nn.functional.nll_loss(log_q.flatten(0, -2), teacher.argmax(-1).flatten())
    return kl


def with_continuation(base, batch: torch.Tensor, gen: int, cache: dict | None) -> torch.Tensor:
    """``batch`` with its last ``gen`` tokens replaced by ``base``'s greedy continuation (cached on disk unless
    ``cache`` is None: the student's own, on-policy continuation, which changes every step)."""
    if cache is None:
        base.eval()
        cont = torch.tensor(greedy_tokens(base, batch[0, :-gen], gen))
        base.train()
        return torch.cat([batch[0, :-gen], cont])[None]
    key = (hash(tuple(batch[0].tolist())), batch.shape[1], gen)
    if key not in cache:
        cache[key] = torch.tensor(greedy_tokens(base, batch[0, :-gen], gen))
        os.makedirs(os.path.dirname(GEN_CACHE), exist_ok=True)
        torch.save(cache, GEN_CACHE)
    return torch.cat([batch[0, :-gen], cache[key]])[None]


def main() -> None:
    torch.set_num_threads(1)
    stage1, variants = sys.argv[1], json.loads(sys.argv[2])
    from peft import LoraConfig, get_peft_model
    from safetensors.torch import load_file

    base, tok = load_smollm2()
    for p in base.parameters():
        p.requires_grad_(False)
    tr, he = essay_token_ids(tok, "train"), essay_token_ids(tok, "heldout")
    stride = (len(he) - 192) // 20
    prompts = [he[i * stride + stride // 2 : i * stride + stride // 2 + 192] for i in range(20)]
    evalw = torch.stack([he[6000:6512], he[12000:12512]])
    with torch.no_grad():
        refs = [greedy_tokens(base, p, 32) for p in prompts]
        paths = torch.stack([torch.cat([p, torch.tensor(r)]) for p, r in zip(prompts, refs, strict=True)])
        t_logits = base(input_ids=evalw, use_cache=False).logits
    gen_cache = torch.load(GEN_CACHE) if os.path.isfile(GEN_CACHE) else {}

    def evaluate(model, greedy: bool) -> dict[str, float]:
        model.eval()
        with torch.no_grad():
            s_logits = model(input_ids=evalw, use_cache=False).logits
            out = {"kl": round(loss_fn("kl", s_logits, t_logits, 0).item(), 4)}
            out["top1"] = round((s_logits.argmax(-1) == t_logits.argmax(-1)).float().mean().item(), 4)
            hits = [(model(input_ids=x[None], use_cache=False).logits[0, 191:-1].argmax(-1) == x[192:]) for x in paths]
            out["onpath"] = round(torch.cat(hits).float().mean().item(), 4)
            if greedy:
                shares = []
                for p, ref in zip(prompts, refs, strict=True):
                    got = greedy_tokens(model, p, 32)
                    shares.append(sum(a == b for a, b in zip(got, ref, strict=False)) / 32)
                out["agree"] = round(sum(shares) / len(shares), 4)
        model.train()
        return out

    for v in variants:
        torch.manual_seed(0)
        if "from" in v:  # a finished linearize DIR: evaluate only
            model = from_pretrained(v["from"])[0]
            with torch.no_grad():
                ratio = perplexity(model, he, 2048, 4096)["ppl"] / ORIGINAL_PPL_2048
            print("SUMMARY", json.dumps(v), evaluate(model, True), "ppl2048_ratio", round(ratio, 4), flush=True)
            continue
        student = patch_model(copy.deepcopy(base), window=64, sinks=4)
        params1 = load_file(f"{v.get('stage1', stage1)}/params.safetensors")
        with torch.no_grad():
            for name, p in liquid_parameters(student):
                p.copy_(params1[name])
        rank = v.get("rank", 8)
        lcfg = LoraConfig(r=rank, lora_alpha=v.get("alpha", 2 * rank), lora_dropout=0.0,
                          target_modules=list(LORA_TARGET_SETS[v.get("targets", "attn")]))  # fmt: skip
        model = get_peft_model(student, lcfg)
        for name, p in model.named_parameters():
            p.requires_grad_(".lora_" in name or (v.get("liquid", True) and ".liquid." in name))
        params = [p for p in model.parameters() if p.requires_grad]
        opt = torch.optim.AdamW(params, lr=v.get("lr", 1e-3), weight_decay=0.0)
        seq, steps, every = v.get("seq", 512), v["steps"], v.get("eval_every", 24)
        seqs = tr[: (len(tr) // seq) * seq].view(-1, seq)
        order = list(range(len(seqs)))
        random.Random(0).shuffle(order)
        print(v["tag"], "step 0", evaluate(model, v.get("greedy0", False)), flush=True)
        t0, losses = time.process_time(), []
        model.train()
        stop = v.get("stop", steps)  # run only the first `stop` steps of the `steps`-step schedule
        for step in range(stop):
            lr = v.get("lr", 1e-3) * 0.5 * (1 + math.cos(math.pi * step / steps))
            for group in opt.param_groups:
                group["lr"] = lr
            batch = seqs[order[step % len(order)]][None]
            if v.get("gen", 0):
                on_policy = v.get("gen_from", "original") == "student"
                batch = with_continuation(
                    model if on_policy else base, batch, v["gen"], None if on_policy else gen_cache
                )
            with torch.no_grad():
                target = base(input_ids=batch, use_cache=False).logits
            loss = loss_fn(v.get("loss", "kl"), model(input_ids=batch, use_cache=False).logits, target,
                           v.get("ce_weight", 1.0), v.get("temp", 1.0))  # fmt: skip
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            opt.step()
            losses.append(loss.item())
            if (step + 1) % every == 0 or step + 1 == stop:
                cpu = (time.process_time() - t0) / (step + 1)
                scores = evaluate(model, step + 1 == stop)
                print(v["tag"], f"step {step + 1}", scores, "train", round(sum(losses[-8:]) / 8, 4),
                      "cpu/step", round(cpu, 2), flush=True)  # fmt: skip
        model = model.merge_and_unload().eval()  # the plain patched model, as from_pretrained loads it
        with torch.no_grad():
            ratio = perplexity(model, he, 2048, 4096)["ppl"] / ORIGINAL_PPL_2048
        print("SUMMARY", json.dumps(v), "ppl2048_ratio", round(ratio, 4), flush=True)
        del model, student, opt


if __name__ == "__main__":
    main()
