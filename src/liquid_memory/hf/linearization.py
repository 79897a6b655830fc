"""``linearize``: make a patched model imitate its original softmax attention, then (optionally) LoRA.

Stage 1 — attention transfer (LoLCATs' recipe, our mixer): layer by layer, only that layer's new
parameters (``LiquidParams``) are trained to minimise the MSE between the hybrid attention output and the
original softmax attention output (both after ``o_proj``) on the same inputs. The inputs are the
*original* model's hidden states, cached in memory for every training sequence and advanced one layer at
a time through the original layer, so layers are trained independently and an error in one never feeds
the next. Stage 2 (``lora_steps > 0``) — LoRA (peft) on the q/k/v/o projections plus the liquid parameters,
through the whole patched model, on one of two objectives (``lora_objective``): ``"distill"`` (default) —
KL(original ‖ patched) of the next-token distributions, the teacher being an unpatched copy of the base
model (no grad), which aims straight at agreeing with the original and gives the patched model no
domain-finetuning advantage over it; or ``"next_token"`` — the usual LM loss on the text.

Checkpoints (``OUT/checkpoint/``) after every stage-1 layer and every ``checkpoint_every`` stage-2 steps;
``resume=True`` continues from them. ``OUT/linearize_log.json`` records every loss, tokens and CPU time;
``OUT/linearize_loss.png`` plots them. The final model is written with ``io.save_liquid``.
"""

from __future__ import annotations

import copy
import json
import math
import random
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch
from torch import nn
from tqdm import tqdm

from liquid_memory.hf.config import LORA_TARGET_SETS, LinearizeConfig
from liquid_memory.hf.io import base_fingerprint, merge_lora, save_liquid
from liquid_memory.hf.patch import is_patched, liquid_parameters, patch_model, patched_layers, set_memory, set_mode
from liquid_memory.hf.smollm import token_ids


def tokenize_sequences(tokenizer: Any, text: str, seq_len: int, max_tokens: int) -> torch.Tensor:
    """``[N, seq_len]`` token ids: the text's tokens cut into consecutive whole sequences."""
    ids = token_ids(tokenizer, text)
    n = min(len(ids), max_tokens) // seq_len
    if n == 0:
        raise ValueError(f"text has {len(ids)} tokens, fewer than one sequence of {seq_len}")
    return ids[: n * seq_len].view(n, seq_len)


def warmup_cosine(step: int, config: LinearizeConfig) -> float:
    """Stage-1 learning-rate factor: linear warmup over ``warmup_steps``, then cosine decay to 0."""
    warm, total = config.warmup_steps, config.steps_per_layer
    if step < warm:
        return (step + 1) / warm
    return 0.5 * (1 + math.cos(math.pi * (step - warm) / max(1, total - warm)))


class _Run:
    """Checkpoint folder, JSON log and timing of one linearization."""

    def __init__(self, out: Path, config: LinearizeConfig, resume: bool) -> None:
        self.out, self.ckpt = out, out / "checkpoint"
        self.ckpt.mkdir(parents=True, exist_ok=True)
        self.log: dict[str, Any] = {"config": asdict(config), "stage1": {}, "stage2": [], "tokens": {}, "cpu_s": {}}
        state_path = self.ckpt / "state.json"
        if resume and state_path.is_file():
            self.log = json.loads(state_path.read_text(encoding="utf-8"))
            self.log.setdefault("resumed", 0)
            self.log["resumed"] += 1
            if self.log["config"] != asdict(config):  # e.g. a longer stage 2 planned after stage 1: keep both
                self.log.setdefault("config_history", []).append(self.log["config"])
                self.log["config"] = asdict(config)
        self.cpu0 = time.process_time() - sum(self.log["cpu_s"].values())
        self.wall0 = time.perf_counter() - self.log.get("wall_s", 0.0)

    def save(self, model: nn.Module, extra: dict[str, torch.Tensor] | None = None) -> None:
        from safetensors.torch import save_file

        tensors = {n: p.detach().float().contiguous() for n, p in liquid_parameters(model)}
        tensors.update(extra or {})
        tmp = self.ckpt / "params.safetensors.tmp"
        save_file(tensors, str(tmp))
        tmp.replace(self.ckpt / "params.safetensors")
        self.log["wall_s"] = time.perf_counter() - self.wall0
        path = self.ckpt / "state.json.tmp"
        path.write_text(json.dumps(self.log), encoding="utf-8")
        path.replace(self.ckpt / "state.json")

    def restore(self, model: nn.Module) -> dict[str, torch.Tensor]:
        from safetensors.torch import load_file

        path = self.ckpt / "params.safetensors"
        if not path.is_file():
            return {}
        tensors = load_file(str(path))
        params = dict(liquid_parameters(model))
        missing = sorted(set(params) - set(tensors))
        if any(not name.endswith(".mix_query") for name in missing):
            raise ValueError(f"checkpoint {path} lacks {missing[:3]}: it was written for another configuration")
        if missing:  # a per-query mix head added to a run resumed after stage 1: it starts at zero (= per head)
            self.log["started_at_resume"] = missing
        with torch.no_grad():
            for name, p in params.items():
                if name in tensors:
                    p.copy_(tensors[name])
        return {k: v for k, v in tensors.items() if k not in params}

    def cpu(self, stage: str, since: float) -> None:
        self.log["cpu_s"][stage] = self.log["cpu_s"].get(stage, 0.0) + time.process_time() - since


def _stage1(model: nn.Module, seqs: torch.Tensor, config: LinearizeConfig, run: _Run, progress: bool) -> None:
    inner, layers = model.model, patched_layers(model)
    done = int(run.log.get("stage1_layers_done", 0))
    if done >= len(layers):
        return
    gen = torch.Generator().manual_seed(config.seed)
    t0 = time.process_time()
    with torch.no_grad():
        hidden = inner.embed_tokens(seqs)
        pos = torch.arange(seqs.shape[1])[None]
        pe = inner.rotary_emb(hidden[:1], position_ids=pos)
    set_mode(model, "softmax")
    bar = tqdm(total=len(layers) * config.steps_per_layer, disable=not progress, desc="stage 1 (attention transfer)")
    bar.update(done * config.steps_per_layer)
    for idx, (decoder, attn) in enumerate(zip(inner.layers, layers, strict=True)):
        if idx >= done:
            with torch.no_grad():
                x = decoder.input_layernorm(hidden)
                target = torch.cat([attn.softmax_forward(x[i : i + 1], pe, None) for i in range(len(x))])
            attn.mode = "hybrid"
            beta0 = attn.calibrate(x[: min(4, len(x))], pe)
            opt = torch.optim.Adam(attn.liquid.parameters(), lr=config.lr)
            sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: warmup_cosine(s, config))
            losses = []
            for _ in range(config.steps_per_layer):
                pick = torch.randint(len(x), (config.batch_size,), generator=gen)
                out = attn(x[pick], position_embeddings=pe)[0]
                loss = nn.functional.mse_loss(out, target[pick])
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                sched.step()
                losses.append(loss.item())
                bar.update(1)
                bar.set_postfix(layer=idx, mse=f"{losses[-1]:.3g}")
            with torch.no_grad():  # the teacher's own scale: MSE relative to the target's mean square
                ref = target.pow(2).mean().item()
            run.log["stage1"][str(idx)] = {"losses": losses, "target_ms": ref, "beta0": beta0.tolist()}
            run.log["tokens"]["stage1"] = (
                run.log["tokens"].get("stage1", 0) + len(losses) * seqs.shape[1] * config.batch_size
            )
            attn.mode = "softmax"
            run.log["stage1_layers_done"] = idx + 1
            run.cpu("stage1", t0)
            t0 = time.process_time()
            run.save(model)
        with torch.no_grad():  # advance the teacher's residual stream through the original layer
            hidden = torch.cat(
                [decoder(hidden[i : i + 1], attention_mask=None, position_embeddings=pe) for i in range(len(hidden))]
            )
    bar.close()
    set_mode(model, "hybrid")


def _lora_factors(peft_model: nn.Module) -> dict[str, torch.Tensor]:
    out = {}
    for name, module in peft_model.named_modules():
        if hasattr(module, "lora_A") and "default" in getattr(module, "lora_A", {}):
            base = name.replace("base_model.model.", "", 1)
            out[f"{base}.lora_A"] = module.lora_A["default"].weight.detach().clone()
            out[f"{base}.lora_B"] = module.lora_B["default"].weight.detach().clone()
    return out


def distill_loss(
    student_logits: torch.Tensor, teacher_logits: torch.Tensor, ce_weight: float = 0.0,
    focus: torch.Tensor | None = None, focus_weight: float = 0.0,
) -> torch.Tensor:  # fmt: skip
    """Mean over positions of KL(teacher ‖ student) of the next-token distributions (fp32), plus ``ce_weight`` ×
    the cross-entropy of the student on the teacher's argmax token (greedy decoding follows the argmax only),
    plus ``focus_weight`` × the mean KL over the positions ``focus`` marks (bool, the logits' leading shape)."""
    log_p = torch.log_softmax(teacher_logits.float(), dim=-1)
    log_q = torch.log_softmax(student_logits.float(), dim=-1)
    kl = (log_p.exp() * (log_p - log_q)).sum(-1)
    loss = kl.mean()
    if ce_weight:
        top = teacher_logits.argmax(-1).flatten()
        loss = loss + ce_weight * nn.functional.nll_loss(log_q.flatten(0, -2), top)
    if focus_weight and focus is not None and bool(focus.any()):
        loss = loss + focus_weight * kl[focus].mean()
    return loss


def _stage2_loss(peft_model: nn.Module, teacher: nn.Module | None, batch: torch.Tensor, config: LinearizeConfig,
                 answers: torch.Tensor | None = None):  # fmt: skip
    """``answers``: the answer tokens of a retrieval-shaped sequence (bool ``[1, L]``); position ``p`` predicts
    token ``p + 1``, so the focused positions are the ones just before them."""
    if teacher is None:
        return peft_model(input_ids=batch, labels=batch, use_cache=False).loss
    with torch.no_grad():
        target = teacher(input_ids=batch, use_cache=False).logits
    focus = None
    if answers is not None:
        focus = torch.zeros_like(answers)
        focus[:, :-1] = answers[:, 1:]
    logits = peft_model(input_ids=batch, use_cache=False).logits
    return distill_loss(logits, target, config.lora_ce_weight, focus, config.lora_answer_weight)


def _stage2(
    model: nn.Module, ids: torch.Tensor, config: LinearizeConfig, run: _Run, restored, progress: bool,
    teacher: nn.Module | None, tokenizer: Any = None,
):  # fmt: skip
    from peft import LoraConfig, get_peft_model

    from liquid_memory.hf.recall_data import recall_sequence

    if config.lora_global_cache:
        set_memory(model, global_cache=config.lora_global_cache)
    if config.lora_recall_share and tokenizer is None:
        raise ValueError("lora_recall_share needs the tokenizer (retrieval-shaped sequences are built from text)")

    lcfg = LoraConfig(
        r=config.lora_rank,
        lora_alpha=config.lora_alpha,
        target_modules=list(LORA_TARGET_SETS[config.lora_targets]),
        lora_dropout=0.0,
    )
    peft_model = get_peft_model(model, lcfg)
    for name, p in peft_model.named_parameters():
        p.requires_grad_(".lora_" in name or ".liquid." in name)
    if restored:
        modules = dict(peft_model.named_modules())
        with torch.no_grad():
            for key, value in restored.items():
                name, part = key.rsplit(".", 1)
                getattr(modules["base_model.model." + name], part)["default"].weight.copy_(value)
    params = [p for p in peft_model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=config.lora_lr, weight_decay=0.0)
    start = len(run.log["stage2"])
    seqs = ids.view(-1)[: (ids.numel() // config.lora_seq_len) * config.lora_seq_len].view(-1, config.lora_seq_len)
    order = list(range(len(seqs)))
    random.Random(config.seed).shuffle(order)
    peft_model.train()
    t0 = time.process_time()
    bar = tqdm(total=config.lora_steps, initial=start, disable=not progress, desc="stage 2 (LoRA)")
    for step in range(start, config.lora_steps):
        lr = config.lora_lr * 0.5 * (1 + math.cos(math.pi * step / config.lora_steps))
        for group in opt.param_groups:
            group["lr"] = lr
        batch, answers = seqs[order[step % len(order)]][None], None
        pick = random.Random(f"{config.seed}/recall/{step}")
        if pick.random() < config.lora_recall_share:  # facts early, questions late (same length, other text)
            batch, answers = recall_sequence(tokenizer, ids.view(-1), config.lora_seq_len, pick)
            batch, answers = batch[None], answers[None]
        loss = _stage2_loss(peft_model, teacher, batch, config, answers)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        run.log["stage2"].append(loss.item())
        run.log["tokens"]["stage2"] = run.log["tokens"].get("stage2", 0) + batch.numel()
        bar.update(1)
        bar.set_postfix(loss=f"{loss.item():.3f}")
        if (step + 1) % config.checkpoint_every == 0 or step + 1 == config.lora_steps:
            run.cpu("stage2", t0)
            t0 = time.process_time()
            run.save(model, _lora_factors(peft_model))
    bar.close()
    factors = _lora_factors(peft_model)
    peft_model.unload()  # back to the plain patched model, then merged as from_pretrained will merge them
    merge_lora(model, factors, {"rank": config.lora_rank, "alpha": config.lora_alpha})
    model.eval()
    return factors


def linearize(
    model: nn.Module, tokenizer: Any, text: str, out_dir: str | Path, config: LinearizeConfig | None = None,
    *, resume: bool = False, progress: bool = True, backend: str | None = None,
) -> dict[str, Any]:  # fmt: skip
    """Linearize ``model`` (patched or not; patched in place with ``config.window``) on ``text``; write ``out_dir``.

    ``backend``: the ``liquid_scan`` backend (``None``: ``LM_BACKEND`` or the licensed ``cpp`` kernel).
    Returns the JSON log. ``out_dir`` then loads with ``from_pretrained`` (base model + stored parameters)."""
    config = config or LinearizeConfig()
    torch.manual_seed(config.seed)
    if not is_patched(model):
        fingerprint = base_fingerprint(model)
        teacher = None
        if config.lora_steps > 0 and config.lora_objective == "distill":
            teacher = copy.deepcopy(model).eval()  # the unpatched original: stage 2's target distribution
            for p in teacher.parameters():
                p.requires_grad_(False)
        patch_model(model, window=config.window, backend=backend, sinks=config.sinks,
                    max_half_life=config.max_half_life, per_query_mix=config.per_query_mix)  # fmt: skip
    else:
        raise ValueError("linearize needs the unpatched base model (it records the base weights' fingerprint)")
    for p in model.parameters():
        p.requires_grad_(False)
    for _, p in liquid_parameters(model):
        p.requires_grad_(True)
    out = Path(out_dir)
    run = _Run(out, config, resume)
    restored = run.restore(model) if resume else {}
    seqs = tokenize_sequences(tokenizer, text, config.seq_len, config.max_train_tokens)
    run.log["train_sequences"] = list(seqs.shape)
    _stage1(model, seqs, config, run, progress)
    factors = None
    if config.lora_steps > 0:
        all_ids = tokenize_sequences(tokenizer, text, config.lora_seq_len, 10**9)
        factors = _stage2(model, all_ids, config, run, restored, progress, teacher, tokenizer)
    run.log["wall_s"] = time.perf_counter() - run.wall0
    run.log["cpu_minutes_total"] = sum(run.log["cpu_s"].values()) / 60
    run.log["tokens_total"] = sum(run.log["tokens"].values())
    targets = list(LORA_TARGET_SETS[config.lora_targets])
    meta = {"rank": config.lora_rank, "alpha": config.lora_alpha, "targets": targets}
    save_liquid(model, out, base_model=config.base_model, base_sha256=fingerprint, lora=factors, lora_meta=meta,
                training={k: run.log[k] for k in ("tokens", "cpu_s", "wall_s", "train_sequences")})  # fmt: skip
    (out / "linearize_log.json").write_text(json.dumps(run.log, indent=1) + "\n", encoding="utf-8")
    plot_losses(run.log, out / "linearize_loss.png")
    return run.log


def plot_losses(log: dict[str, Any], path: Path) -> None:
    """Stage 1: relative MSE (loss / target mean square) per layer over its steps; stage 2: LM loss."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for idx, entry in sorted(log["stage1"].items(), key=lambda kv: int(kv[0])):
        rel = [v / max(entry["target_ms"], 1e-30) for v in entry["losses"]]
        axes[0].plot(rel, color=plt.cm.viridis(int(idx) / max(len(log["stage1"]), 1)), lw=0.8)
    axes[0].set(yscale="log", xlabel="step (per layer)", ylabel="MSE / mean square of target",
                title="stage 1: attention transfer (colour = layer)")  # fmt: skip
    if log["stage2"]:
        axes[1].plot(log["stage2"], lw=0.8)
    objective = log["config"].get("lora_objective", "next_token")
    ylabel = "KL(original ‖ patched) per token" if objective == "distill" else "next-token loss"
    axes[1].set(xlabel="step", ylabel=ylabel, title=f"stage 2: LoRA ({objective})")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
