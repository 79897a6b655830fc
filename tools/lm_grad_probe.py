"""Where do a LiquidLM run's gradient spikes come from? Replays a finished ``lm train``/``lm bench`` run's first
steps (same config, seed, batches, optimizer and schedule — training is deterministic, so the spikes recur at
the same steps) and prints the gradient norm per parameter group; on a spike (total > ``--spike``) also the
q / k / v slices of every layer's LiquidMemory ``in_proj_weight`` and its decay projection.

    LM_PRIVATE_KEY_FILE=.lm-demo.key .venv/bin/python tools/lm_grad_probe.py RUNS/liquid/seed1 --steps 40

RUN_DIR needs the run's ``checkpoint.pt``: it carries the model config, the training arguments and the tokenizer.
"""

from __future__ import annotations

import argparse
import collections
import functools
import math
from pathlib import Path

import torch

from liquid_memory.lm import data as data_mod
from liquid_memory.lm.checkpoint import load_checkpoint
from liquid_memory.lm.train import CHECKPOINT_NAME, TrainArgs, build_optimizer, lr_factor, train_step
from liquid_memory.models import LiquidLM


def _group(name: str) -> str:
    """``blocks.3.mixer.memory.in_proj_weight`` → ``blocks.mixer.memory.in_proj_weight`` (summed over layers)."""
    return ".".join(part for part in name.split(".") if not part.isdigit())


def _layer_detail(model: LiquidLM) -> None:
    params = dict(model.named_parameters())
    for name, p in params.items():
        if not name.endswith("memory.in_proj_weight") or p.grad is None:
            continue
        layer, e = name.split(".mixer")[0], p.shape[1]
        q, k, v = (float(p.grad[i * e : (i + 1) * e].norm()) for i in range(3))
        decay = params[name.replace("in_proj_weight", "decay_proj.weight")].grad
        print(f"    {layer}: q {q:.2f}  k {k:.2f}  v {v:.2f}  decay_proj {float(decay.norm()):.2f}")


def _record_gradients(model: LiquidLM, squares: dict[str, float], spike: float) -> None:
    """Sum of squared raw gradients per parameter group into ``squares``; layer detail above ``spike``."""
    for name, param in model.named_parameters():
        if param.grad is not None:
            squares[_group(name)] += float(param.grad.float().pow(2).sum())
    if math.sqrt(sum(squares.values())) > spike:
        _layer_detail(model)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("run_dir")
    p.add_argument("--steps", type=int, default=60)
    p.add_argument("--spike", type=float, default=20.0, help="total grad norm above which layers are detailed")
    p.add_argument("--threads", type=int, default=2)
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    checkpoint = load_checkpoint(Path(a.run_dir) / CHECKPOINT_NAME)
    fields = set(TrainArgs.__dataclass_fields__)
    args = TrainArgs(**{k: v for k, v in checkpoint.train_args.items() if k in fields})
    tokens = torch.tensor(checkpoint.codec.encode_documents(data_mod.load_corpus(args.data).train), dtype=torch.long)
    torch.manual_seed(args.seed)
    model = LiquidLM(checkpoint.config)  # fresh init with the run's seed: the replay starts where the run started
    optimizer = build_optimizer(model, args)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: lr_factor(s, args))
    for step in range(a.steps):
        x, y = data_mod.batch_for_step(tokens, step, seed=args.seed, global_batch=args.batch_size,
                                       seq_len=args.seq_len, rank=0, world=1)  # fmt: skip
        squares: dict[str, float] = collections.defaultdict(float)
        inspect = functools.partial(_record_gradients, model, squares, a.spike)
        loss, total = train_step(model, optimizer, scheduler, x, y, args, inspect=inspect)
        top = ", ".join(f"{k} {math.sqrt(v):.2f}" for k, v in sorted(squares.items(), key=lambda kv: -kv[1])[:3])
        print(f"step {step + 1}: loss {loss.item():.3f}, grad norm {float(total):.2f} ({top})", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
