"""``liquid-memory lm train``: one training loop for one process or many (torchrun + DDP).

AdamW (decoupled weight decay on matrices only), linear warmup then cosine decay to ``min_lr_ratio``, gradient
clipping, optional bf16 autocast, a checkpoint every ``checkpoint_every`` steps and at the end (resume gives the
same next step as never stopping: optimizer, schedule and the step-indexed batches all come back), a tqdm bar,
``train_log.json`` and ``loss.png`` in ``out_dir``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch.nn.parallel import DistributedDataParallel
from tqdm import tqdm

from liquid_memory.lm import data as data_mod
from liquid_memory.lm.checkpoint import Checkpoint, describe_diff, load_checkpoint, save_checkpoint
from liquid_memory.lm.distributed import DistInfo, barrier, init_distributed, mean_over_processes, shutdown
from liquid_memory.lm.errors import CheckpointMismatch, DataError, TrainingSetupError
from liquid_memory.lm.tokenizer import TextCodec
from liquid_memory.models import RECOMMENDED_LIQUID_KWARGS, ConfigError, LiquidLM, LiquidLMConfig

CHECKPOINT_NAME = "checkpoint.pt"
LOG_NAME = "train_log.json"
PLOT_NAME = "loss.png"


# TrainArgs fields that are LiquidMemory options (liquid_kwargs keys of the same name, except as LIQUID_KWARG_NAMES
# says), each with the value that means "not passed to LiquidMemory" (LiquidMemory's own default applies; for
# short_conv LiquidLM's: off)
LIQUID_FLAGS: dict[str, Any] = {"output_gate": False, "out_norm_eps": None, "qk_norm": False, "memory_short_conv": 0}
# memory_short_conv: LiquidMemory's own q/k/v convolution, apart from the model-level short_conv field
LIQUID_KWARG_NAMES: dict[str, str] = {"memory_short_conv": "short_conv"}


@dataclass
class TrainArgs:
    """Everything ``lm train`` takes (the CLI flags map 1:1 onto these fields)."""

    data: str | None = None
    out_dir: str = "lm_run"
    mixer: str = "liquid"
    d_model: int = 256
    n_layers: int = 4
    n_heads: int = 4
    ffn_dim: int | None = None
    short_conv: int = 0
    conv_qkv: bool = False
    output_gate: bool = RECOMMENDED_LIQUID_KWARGS["output_gate"]
    out_norm_eps: float | None = RECOMMENDED_LIQUID_KWARGS["out_norm_eps"]
    qk_norm: bool = RECOMMENDED_LIQUID_KWARGS["qk_norm"]
    memory_short_conv: int = 0
    backend: str | None = None
    vocab_size: int = 4096
    tokenizer: str | None = None
    seq_len: int = 256
    batch_size: int = 16
    steps: int = 1000
    lr: float = 1e-3
    min_lr_ratio: float = 0.1
    warmup: int = 50
    weight_decay: float = 0.1
    grad_clip: float = 1.0
    bf16: bool = False
    eval_every: int = 100
    eval_windows: int = 64
    checkpoint_every: int = 200
    resume: bool = False
    stop_at: int | None = None
    seed: int = 0
    device: str = "cpu"
    progress: bool = True
    plot: bool = True

    @staticmethod
    def liquid_flags(liquid_kwargs: dict[str, Any]) -> dict[str, Any]:
        """The inverse of :meth:`liquid_kwargs`: the fields that build a model with these LiquidMemory options
        (the LiquidLM comparison, ``python -m benchmarks lm``, trains its named models through them). An option
        without a flag is a ``ValueError``."""
        unknown = sorted(set(liquid_kwargs) - {LIQUID_KWARG_NAMES.get(flag, flag) for flag in LIQUID_FLAGS})
        if unknown:
            raise ValueError(f"lm train has no flag for the LiquidMemory option(s) {unknown}")
        return {flag: liquid_kwargs.get(LIQUID_KWARG_NAMES.get(flag, flag), off) for flag, off in LIQUID_FLAGS.items()}

    def liquid_kwargs(self) -> dict[str, Any]:
        """The LiquidMemory options of ``--output-gate`` / ``--out-norm-eps`` / ``--qk-norm`` /
        ``--memory-short-conv`` (``None`` eps =
        LiquidMemory's default); ``{}`` for the other mixers, which have no LiquidMemory (their configs stay free
        of them)."""
        if self.out_norm_eps is not None and not self.out_norm_eps > 0:
            raise TrainingSetupError(f"--out-norm-eps must be > 0, got {self.out_norm_eps}")
        if self.mixer != "liquid":
            return {}
        values = {flag: getattr(self, flag) for flag in LIQUID_FLAGS}
        return {
            LIQUID_KWARG_NAMES.get(flag, flag): value for flag, value in values.items() if value != LIQUID_FLAGS[flag]
        }

    def model_config(self, vocab_size: int) -> LiquidLMConfig:
        try:
            return LiquidLMConfig(
                vocab_size=vocab_size, d_model=self.d_model, n_layers=self.n_layers, n_heads=self.n_heads,
                mixer=self.mixer, ffn_dim=self.ffn_dim, max_seq_len=self.seq_len, short_conv=self.short_conv,
                conv_qkv=self.conv_qkv, backend=self.backend, liquid_kwargs=self.liquid_kwargs(),
            )  # fmt: skip
        except ConfigError as err:
            raise TrainingSetupError(str(err)) from None


def lr_factor(step: int, args: TrainArgs) -> float:
    """Linear warmup over ``warmup`` steps, then cosine from 1 to ``min_lr_ratio`` at the last step."""
    if step < args.warmup:
        return (step + 1) / args.warmup
    progress = (step - args.warmup) / max(1, args.steps - args.warmup)
    return args.min_lr_ratio + (1 - args.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))


def build_optimizer(model: torch.nn.Module, args: TrainArgs) -> torch.optim.AdamW:
    decay = [p for p in model.parameters() if p.dim() >= 2]
    no_decay = [p for p in model.parameters() if p.dim() < 2]
    groups = [{"params": decay, "weight_decay": args.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    return torch.optim.AdamW(groups, lr=args.lr, betas=(0.9, 0.95), eps=1e-8)


def train_step(
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler,
    x: torch.Tensor,
    y: torch.Tensor,
    args: TrainArgs,
    inspect: Callable[[], None] | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """One optimisation step (forward, cross-entropy, backward, clip, AdamW, schedule) → (loss, grad norm before
    clipping). ``inspect`` runs between backward and clipping (where raw gradients can be read)."""
    with _autocast(args.bf16, x.device.type):
        logits, _ = model(x)
    loss = F.cross_entropy(logits.float().flatten(0, 1), y.flatten())
    loss.backward()
    if inspect is not None:
        inspect()
    grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), args.grad_clip)
    optimizer.step()
    scheduler.step()
    optimizer.zero_grad(set_to_none=True)
    return loss, grad_norm


def _check_args(args: TrainArgs, info: DistInfo) -> None:
    for name in ("steps", "batch_size", "seq_len", "vocab_size"):
        if getattr(args, name) <= 0:
            raise TrainingSetupError(f"--{name.replace('_', '-')} must be positive, got {getattr(args, name)}")
    if args.batch_size % info.world:
        raise TrainingSetupError(
            f"the global --batch-size {args.batch_size} is not divisible by the {info.world} processes",
            remedy="choose a batch size that is a multiple of --nproc-per-node",
        )
    if args.warmup < 0 or args.warmup >= args.steps and args.steps > 1:
        raise TrainingSetupError(f"--warmup must be in [0, --steps), got {args.warmup}")


def _codec(args: TrainArgs, corpus: data_mod.Corpus, out: Path, info: DistInfo) -> TextCodec:
    """The tokenizer: given, or trained on the training split by rank 0 and read back by every rank."""
    if args.tokenizer:
        path = Path(args.tokenizer)
        if not path.is_file():
            raise DataError(f"tokenizer file {str(path)!r} does not exist", remedy="pass a tokenizers JSON file")
        try:
            return TextCodec.from_json(path.read_text(encoding="utf-8"))
        except Exception as err:  # noqa: BLE001
            raise DataError(f"{str(path)!r} is not a usable tokenizers JSON ({err})") from None
    target = out / "tokenizer.json"
    if info.is_main:
        out.mkdir(parents=True, exist_ok=True)
        target.write_text(TextCodec.train(corpus.train, args.vocab_size).to_json(), encoding="utf-8")
    barrier(info)
    return TextCodec.from_json(target.read_text(encoding="utf-8"))


@torch.no_grad()
def heldout_loss(model: LiquidLM, windows: torch.Tensor, batch: int = 8, bf16: bool = False) -> float:
    """Mean next-token cross-entropy over the held-out windows (every token of every window counts once)."""
    was_training = model.training
    model.eval()
    total, count = 0.0, 0
    for i in range(0, windows.shape[0], batch):
        chunk = windows[i : i + batch].to(model.embed.weight.device)
        with _autocast(bf16, chunk.device.type):
            logits, _ = model(chunk[:, :-1], use_cache=False)
        total += F.cross_entropy(logits.float().flatten(0, 1), chunk[:, 1:].flatten(), reduction="sum").item()
        count += chunk[:, 1:].numel()
    model.train(was_training)
    return total / count


def _autocast(bf16: bool, device_type: str = "cpu"):
    return torch.autocast(device_type, dtype=torch.bfloat16) if bf16 else contextlib.nullcontext()


def run_training(args: TrainArgs) -> dict[str, Any]:
    """Train (or resume); returns the summary also written to ``train_log.json``."""
    info = init_distributed(args.device)
    try:
        return _train(args, info)
    finally:
        shutdown(info)


def _train(args: TrainArgs, info: DistInfo) -> dict[str, Any]:
    _check_args(args, info)
    out = Path(args.out_dir)
    if info.is_main:
        out.mkdir(parents=True, exist_ok=True)
    ckpt_path = out / CHECKPOINT_NAME
    corpus = data_mod.load_corpus(args.data)
    resumed = None
    if args.resume:
        if not ckpt_path.is_file():
            raise TrainingSetupError(f"--resume: no checkpoint at {str(ckpt_path)!r}", remedy="drop --resume")
        resumed = load_checkpoint(ckpt_path)
        asked = args.model_config(resumed.config.vocab_size)
        if asked != resumed.config:
            raise CheckpointMismatch(
                f"{str(ckpt_path)!r} was trained with another configuration: {describe_diff(resumed.config, asked)}"
            )
        codec = resumed.codec
    else:
        codec = _codec(args, corpus, out, info)
    train_tokens = torch.tensor(codec.encode_documents(corpus.train), dtype=torch.long)
    heldout_tokens = torch.tensor(codec.encode_documents(corpus.heldout), dtype=torch.long)
    data_mod.check_length(train_tokens, args.seq_len, "training")
    data_mod.check_length(heldout_tokens, args.seq_len, "held-out")
    windows = data_mod.heldout_windows(heldout_tokens, args.seq_len, args.eval_windows)

    config = args.model_config(codec.vocab_size)
    torch.manual_seed(args.seed)
    model = LiquidLM(config).to(info.device)
    optimizer = build_optimizer(model, args)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: lr_factor(s, args))
    log: dict[str, Any] = {"steps": [], "evals": []}
    start = 0
    if resumed is not None:
        model.load_state_dict(resumed.model_state)
        optimizer.load_state_dict(resumed.optimizer)
        scheduler.load_state_dict(resumed.scheduler)
        start, log = resumed.step, resumed.log
    wrapped = DistributedDataParallel(model) if info.active else model
    model.train()

    def save(step: int) -> None:
        if info.is_main:
            save_checkpoint(ckpt_path, Checkpoint(
                config=config, codec=codec, model_state=model.state_dict(), step=step,
                train_args=dataclasses.asdict(args), log=log,
                optimizer=optimizer.state_dict(), scheduler=scheduler.state_dict(),
            ))  # fmt: skip
        barrier(info)

    local_batch = args.batch_size // info.world
    bar = tqdm(range(start, args.steps), initial=start, total=args.steps, disable=not (info.is_main and args.progress),
               desc=f"lm train ({config.mixer})", unit="step", dynamic_ncols=True)  # fmt: skip
    began = time.perf_counter()
    stop = args.steps if args.stop_at is None else min(args.steps, args.stop_at)
    for step in bar:
        if step >= stop:
            break
        x, y = data_mod.batch_for_step(
            train_tokens, step, seed=args.seed, global_batch=args.batch_size, seq_len=args.seq_len,
            rank=info.rank, world=info.world,
        )  # fmt: skip
        x, y = x.to(info.device), y.to(info.device)
        t0 = time.perf_counter()
        loss, grad_norm = train_step(wrapped, optimizer, scheduler, x, y, args)
        loss_value = mean_over_processes(loss, info)
        seconds = time.perf_counter() - t0
        if not math.isfinite(loss_value):
            raise TrainingSetupError(f"the loss became {loss_value} at step {step + 1}", remedy="lower --lr")
        record = {
            "step": step + 1,
            "loss": loss_value,
            "lr": scheduler.get_last_lr()[0],
            "grad_norm": float(grad_norm),
            "tokens_per_s": local_batch * args.seq_len * info.world / seconds,
        }
        log["steps"].append(record)
        bar.set_postfix(loss=f"{loss_value:.3f}")
        last = step + 1 == stop
        if args.eval_every and ((step + 1) % args.eval_every == 0 or last):
            if info.is_main:
                value = heldout_loss(model, windows, bf16=args.bf16)
                log["evals"].append({"step": step + 1, "heldout_loss": value, "heldout_ppl": math.exp(value)})
            barrier(info)
        if last or (args.checkpoint_every and (step + 1) % args.checkpoint_every == 0):
            save(step + 1)
    bar.close()
    elapsed = time.perf_counter() - began
    summary = _summary(args, config, model, log, info, corpus, train_tokens, heldout_tokens, elapsed, start)
    if info.is_main:
        (out / LOG_NAME).write_text(json.dumps({**summary, "steps": log["steps"], "evals": log["evals"]}, indent=1))
        if args.plot:
            from liquid_memory.lm.plot import plot_losses

            plot_losses({config.mixer: log}, out / PLOT_NAME, title=f"LiquidLM ({config.mixer}) training")
    return {**summary, "log": log, "model": model}


def _summary(args, config, model, log, info, corpus, train_tokens, heldout_tokens, elapsed, start) -> dict[str, Any]:
    evals = log["evals"]
    steps_run = len(log["steps"]) - start
    return {
        "model_config": config.to_dict(),
        "train_args": dataclasses.asdict(args),
        "parameters": model.num_parameters(),
        "world_size": info.world,
        "data": corpus.source,
        "train_tokens": train_tokens.numel(),
        "heldout_tokens": heldout_tokens.numel(),
        "steps_done": len(log["steps"]),
        "tokens_seen": len(log["steps"]) * args.batch_size * args.seq_len,
        "final_loss": log["steps"][-1]["loss"] if log["steps"] else None,
        "heldout_loss": evals[-1]["heldout_loss"] if evals else None,
        "heldout_ppl": evals[-1]["heldout_ppl"] if evals else None,
        "seconds": elapsed,
        "tokens_per_s": steps_run * args.batch_size * args.seq_len / elapsed if elapsed > 0 else None,
    }
