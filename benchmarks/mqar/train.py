"""Train one model on one MQAR setting with fixed seeds; evaluate held-out accuracy at checkpoints.

Why a checkpointed curve and not one final number: at this scale LiquidMemory learns recall but can need more
steps than softmax attention, so the useful figure is the step at which each model first reaches a threshold
(``steps_to``), measured on the same data stream, optimizer and schedule for every model.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from benchmarks.mqar.data import IGNORE, MQARTask, make_batch, make_split
from benchmarks.mqar.mix import make_mixed_batch, parse_mix

# (model, inputs [B, T], answer mask [B, T]) -> logits [N, V] at the N answer positions, row-major.
LogitsFn = Callable[[nn.Module, Tensor, Tensor], Tensor]


@dataclass(frozen=True)
class TrainConfig:
    """Optimisation and evaluation settings shared by every model of a sweep (so steps are comparable)."""

    batch_size: int = 32
    max_steps: int = 2000
    lr: float = 3e-3
    weight_decay: float = 0.1
    warmup_steps: int = 100
    grad_clip: float = 1.0
    eval_every: int = 50
    eval_examples: int = 256
    stop_accuracy: float = 0.95  # stop a run early once held-out accuracy reaches this
    thresholds: tuple[float, ...] = (0.5, 0.9, 0.95)
    seed: int = 0  # the model's init seed; also the data seed unless data_seed is set
    data_seed: int | None = None  # training batches and held-out sets (None: = seed); split to tell init from data
    time_budget_s: float = 0.0  # 0 = no wall-clock limit; otherwise stop (and say so) after this long
    train_mix: str = ""  # "" = train on the evaluated setting; else "T:pairs:weight,..." (mix.py)

    @property
    def batch_seed(self) -> int:
        """The seed the training batches and held-out sets are drawn from: ``data_seed``, or ``seed`` when unset."""
        return self.seed if self.data_seed is None else self.data_seed

    def __post_init__(self) -> None:
        for name in ("batch_size", "max_steps", "eval_every", "eval_examples"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be > 0, got {getattr(self, name)}")
        if self.lr <= 0 or self.warmup_steps < 0 or self.grad_clip <= 0:
            raise ValueError("lr and grad_clip must be > 0 and warmup_steps >= 0")


@dataclass
class RunResult:
    """What one run measured; ``history`` rows are ``{step, accuracy, loss, train_loss, elapsed_s, grad_norm_max,
    grad_norm_mean}`` (gradient norms before the clip, over the steps since the previous row;
    recorded in runs from 2026-11-30 on)."""

    history: list[dict] = field(default_factory=list)
    steps_to: dict[str, int | None] = field(default_factory=dict)
    final_accuracy: float = 0.0
    best_accuracy: float = 0.0
    steps_run: int = 0
    stop_reason: str = ""
    train_seconds: float = 0.0
    seconds_per_step: float = 0.0

    def as_dict(self) -> dict:
        return asdict(self)


def lr_factor(step: int, cfg: TrainConfig) -> float:
    """Linear warmup, then constant: a fixed schedule, so 'steps to 0.90' does not depend on max_steps."""
    if cfg.warmup_steps and step < cfg.warmup_steps:
        return (step + 1) / cfg.warmup_steps
    return 1.0


def answer_loss(model: nn.Module, logits_fn: LogitsFn, inputs: Tensor, labels: Tensor) -> tuple[Tensor, Tensor]:
    """Cross-entropy over answer positions only (labels ``IGNORE`` elsewhere), as Zoology scores MQAR.

    Returns ``(loss, predictions)``; predictions are the argmax at the answer positions.
    """
    mask = labels != IGNORE
    logits = logits_fn(model, inputs, mask).float()
    return F.cross_entropy(logits, labels[mask]), logits.detach().argmax(-1)


def mixed_answer_loss(model: nn.Module, logits_fn: LogitsFn, groups: list[tuple[Tensor, Tensor]]) -> Tensor:
    """Mean cross-entropy over the answer positions of all groups (groups of different lengths, one forward each).

    Equals :func:`answer_loss` on one right-padded batch holding every group (causal models), without the padding.
    """
    total = sum(int((y != IGNORE).sum()) for _, y in groups)
    loss = torch.zeros(())
    for x, y in groups:
        mask = y != IGNORE
        loss = loss + F.cross_entropy(logits_fn(model, x, mask).float(), y[mask], reduction="sum")
    return loss / total


@torch.no_grad()
def evaluate(model: nn.Module, logits_fn: LogitsFn, inputs: Tensor, labels: Tensor, batch_size: int) -> dict:
    """Held-out accuracy (argmax == value at every query position) and answer loss."""
    was_training = model.training
    model.eval()
    correct = total = 0
    loss_sum = 0.0
    for start in range(0, inputs.shape[0], batch_size):
        x, y = inputs[start : start + batch_size], labels[start : start + batch_size]
        loss, pred = answer_loss(model, logits_fn, x, y)
        target = y[y != IGNORE]
        correct += int((pred == target).sum())
        total += target.numel()
        loss_sum += float(loss) * target.numel()
    model.train(was_training)
    return {"accuracy": correct / max(total, 1), "loss": loss_sum / max(total, 1)}


def _param_groups(model: nn.Module, weight_decay: float) -> list[dict]:
    """Decay matrices only (not biases, norms, decay biases), the usual AdamW practice."""
    decay, no_decay = [], []
    for _name, p in model.named_parameters():
        if p.requires_grad:
            (decay if p.dim() >= 2 else no_decay).append(p)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def train_mqar(
    model: nn.Module,
    logits_fn: LogitsFn,
    task: MQARTask,
    cfg: TrainConfig,
    log: Callable[[str], None] | None = None,
) -> RunResult:
    """Train ``model`` in place on fresh seeded batches; evaluate every ``eval_every`` steps on a fixed held-out set.

    The training stream uses the data seed (``cfg.data_seed``, by default ``cfg.seed``) and the held-out set the
    data seed ``+ 1_000_003``: every model of a sweep
    sees the same batches in the same order. With ``cfg.train_mix`` the batches are drawn from that mixture of
    settings; ``steps_to`` and the stop rule stay on ``task``, and each other mixture setting is also evaluated on
    its own held-out set (``history[i]['mix_accuracy']``, as Zoology reports per setting: where a model learns
    first). A non-finite loss stops the run (``stop_reason='non-finite loss'``).
    """
    mix = parse_mix(cfg.train_mix, task) if cfg.train_mix else None
    data_seed = cfg.batch_seed
    gen = torch.Generator().manual_seed(data_seed)
    eval_x, eval_y = make_split(task, cfg.eval_examples, data_seed + 1_000_003)
    mix_evals = {
        f"{c.task.seq_len}:{c.task.num_kv_pairs}": make_split(c.task, cfg.eval_examples, data_seed + 1_000_003 + i)
        for i, c in enumerate(mix or (), start=1)
        if c.task != task
    }
    opt = torch.optim.AdamW(_param_groups(model, cfg.weight_decay), lr=cfg.lr, betas=(0.9, 0.98))
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: lr_factor(s, cfg))
    result = RunResult(steps_to={f"{t:.2f}": None for t in cfg.thresholds})
    model.train()
    start = time.perf_counter()
    train_loss = float("nan")
    grad_norms: list[float] = []  # since the last evaluation
    step = 0
    while step < cfg.max_steps:
        if mix is None:
            loss, _ = answer_loss(model, logits_fn, *make_batch(task, cfg.batch_size, gen))
        else:
            loss = mixed_answer_loss(model, logits_fn, make_mixed_batch(mix, cfg.batch_size, gen))
        train_loss = float(loss.detach())
        if not math.isfinite(train_loss):
            result.stop_reason = "non-finite loss"
            break
        opt.zero_grad(set_to_none=True)
        loss.backward()
        grad_norms.append(float(nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)))  # before the clip
        opt.step()
        sched.step()
        step += 1
        if step % cfg.eval_every and step != cfg.max_steps:
            continue
        metrics = evaluate(model, logits_fn, eval_x, eval_y, max(cfg.batch_size, 64))
        mix_acc = {
            name: round(evaluate(model, logits_fn, x, y, max(cfg.batch_size, 64))["accuracy"], 4)
            for name, (x, y) in mix_evals.items()
        }
        elapsed = time.perf_counter() - start
        grads = {
            "grad_norm_max": round(max(grad_norms), 4),
            "grad_norm_mean": round(sum(grad_norms) / len(grad_norms), 4),
        }
        row = {"step": step, **metrics, "train_loss": train_loss, "elapsed_s": round(elapsed, 2), **grads}
        grad_norms.clear()
        if mix_acc:
            row["mix_accuracy"] = mix_acc
        result.history.append(row)
        for key in result.steps_to:
            if result.steps_to[key] is None and metrics["accuracy"] >= float(key):
                result.steps_to[key] = step
        if log:
            extra = "".join(f"  {name} {acc:.3f}" for name, acc in mix_acc.items())
            log(
                f"  step {step:5d}  acc {metrics['accuracy']:.3f}  loss {metrics['loss']:.3f}  "
                f"grad max {row['grad_norm_max']:.2f} mean {row['grad_norm_mean']:.2f}  {elapsed:7.1f}s{extra}"
            )
        if metrics["accuracy"] >= cfg.stop_accuracy:
            result.stop_reason = f"reached {cfg.stop_accuracy}"
            break
        if cfg.time_budget_s and elapsed >= cfg.time_budget_s:
            result.stop_reason = f"time budget {cfg.time_budget_s:.0f}s"
            break
    else:
        result.stop_reason = "max_steps"
    result.train_seconds = round(time.perf_counter() - start, 2)
    result.steps_run = step
    result.seconds_per_step = round(result.train_seconds / max(step, 1), 4)
    accs = [row["accuracy"] for row in result.history]
    result.final_accuracy = accs[-1] if accs else 0.0
    result.best_accuracy = max(accs) if accs else 0.0
    return result
