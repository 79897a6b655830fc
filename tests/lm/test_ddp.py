"""DDP for real: ``torchrun`` starts 2 gloo processes (compiled ``cpp`` kernels, dev licence) that must stay
identical and match 1 process with the same global batch."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import torch

from liquid_memory.lm.checkpoint import load_checkpoint
from tests.dev_licence import dev_licence
from tests.numerics import rel_err

WORKER = Path(__file__).with_name("ddp_worker.py")


def _torchrun(nproc: int, corpus: Path, out: Path) -> None:
    env = {**os.environ, "LM_PRIVATE_KEY": dev_licence(), "OMP_NUM_THREADS": "1"}
    env.pop("LM_BACKEND", None)
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={nproc}",
               str(WORKER), str(corpus), str(out)]  # fmt: skip
    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=240)
    assert result.returncode == 0, result.stderr[-3000:]


def test_two_gloo_ranks_stay_identical_and_match_one_process(corpus, tmp_path):
    _torchrun(2, corpus, tmp_path / "two")
    _torchrun(1, corpus, tmp_path / "one")
    ranks = [torch.load(tmp_path / "two" / f"rank{r}.pt") for r in (0, 1)]
    single = torch.load(tmp_path / "one" / "rank0.pt")
    for name, param in ranks[0]["params"].items():
        assert torch.equal(param, ranks[1]["params"][name]), f"{name} differs between ranks"
        assert rel_err(param, single["params"][name]) < 1e-5, name
    assert ranks[0]["losses"] == ranks[1]["losses"]  # the logged loss is the all-reduced mean
    assert torch.tensor(ranks[0]["losses"]).sub(torch.tensor(single["losses"])).abs().max() < 1e-5
    assert single["losses"][0] != single["losses"][-1]  # training moved: equality is not trivial
    checkpoint = load_checkpoint(tmp_path / "two" / "checkpoint.pt")  # written once, by rank 0
    assert checkpoint.step == 4 and checkpoint.log["evals"]
