"""Run under ``torchrun`` by test_ddp.py: a few training steps, then each rank saves its own parameters.

Usage: ``torchrun --standalone --nproc-per-node N ddp_worker.py CORPUS OUT_DIR``
"""

from __future__ import annotations

import os
import sys

import torch

from liquid_memory.lm.train import TrainArgs, run_training


def main() -> None:
    corpus, out = sys.argv[1], sys.argv[2]
    torch.set_num_threads(1)
    args = TrainArgs(
        data=corpus, out_dir=out, mixer="liquid", d_model=32, n_layers=2, n_heads=2, short_conv=3, vocab_size=300,
        seq_len=32, batch_size=4, steps=4, warmup=1, lr=3e-3, eval_every=4, eval_windows=2, checkpoint_every=0,
        progress=False, plot=False,
    )  # fmt: skip
    summary = run_training(args)
    rank = int(os.environ.get("RANK", "0"))
    losses = [r["loss"] for r in summary["log"]["steps"]]
    torch.save({"params": summary["model"].state_dict(), "losses": losses}, os.path.join(out, f"rank{rank}.pt"))


if __name__ == "__main__":
    main()
