"""A training mixture of MQAR settings (shorter sequences with fewer pairs beside the target), as Zoology trains.

Why: Zoology does not train MQAR on one setting. Its training set concatenates several (e.g. 64 tokens / 4 pairs
with 5× the examples of 128/8 and 256/16, 256/32, 256/64) and reports accuracy per test setting. The short,
few-pair examples are where a model first finds the recall circuit; the long ones alone leave it on a loss plateau
for thousands of steps (benchmarks/results/mqar/README.md).

Sampling rule (deterministic, the same for every model): every training batch holds a **fixed** number of examples
of each component, ``batch_size · weight / Σ weights`` rounded by largest remainder (ties to the earlier component),
drawn in the order the components are given from the one training generator. Each component stays its own
``[n_i, T_i]`` tensor (no padding): a causal model's outputs at a sequence's positions do not depend on what would
follow, so running the groups separately gives the loss a right-padded mixed batch would, at less compute.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import torch
from torch import Tensor

from benchmarks.mqar.data import MQARTask, make_batch


@dataclass(frozen=True)
class MixComponent:
    """One setting of the mixture and its relative weight (share of every batch)."""

    task: MQARTask
    weight: float = 1.0

    @property
    def spec(self) -> str:
        return f"{self.task.seq_len}:{self.task.num_kv_pairs}:{self.weight:g}"


def parse_mix(text: str, target: MQARTask) -> tuple[MixComponent, ...]:
    """``"64:4:2,128:8,256:16"`` (``seq_len:pairs[:weight]``, weight 1 if omitted) → components.

    Every component shares ``target``'s vocabulary and ``power_a`` and may not be longer than ``target`` (the model
    is built for ``target.seq_len`` positions). Bad text is a ``ValueError`` naming the item.
    """
    components = []
    for item in text.split(","):
        parts = item.strip().split(":")
        try:
            if len(parts) not in (2, 3):
                raise ValueError
            seq_len, pairs = int(parts[0]), int(parts[1])
            weight = float(parts[2]) if len(parts) == 3 else 1.0
        except ValueError:
            raise ValueError(f"a --train-mix item is 'seq_len:pairs[:weight]' (e.g. 64:4:2), got {item!r}") from None
        if not weight > 0 or weight == float("inf"):
            raise ValueError(f"a --train-mix weight must be a finite number > 0, got {item!r}")
        if seq_len > target.seq_len:
            raise ValueError(f"--train-mix item {item!r} is longer than the evaluated setting ({target.seq_len})")
        components.append(MixComponent(replace(target, seq_len=seq_len, num_kv_pairs=pairs), weight))
    if not components:
        raise ValueError("--train-mix is empty")
    return tuple(components)


def mix_counts(weights: list[float], batch_size: int) -> list[int]:
    """Examples per component in every batch: proportional to ``weights``, summing to ``batch_size``.

    Largest-remainder rounding; equal remainders go to the earlier component. A component that would get no
    example at all is a ``ValueError`` (it would silently drop out of the mixture).
    """
    total = sum(weights)
    exact = [batch_size * w / total for w in weights]
    counts = [int(e) for e in exact]
    order = sorted(range(len(weights)), key=lambda i: (-(exact[i] - counts[i]), i))
    for i in order[: batch_size - sum(counts)]:
        counts[i] += 1
    if min(counts) == 0:
        raise ValueError(f"batch_size {batch_size} is too small for the --train-mix weights {weights}")
    return counts


def make_mixed_batch(
    components: tuple[MixComponent, ...], batch_size: int, gen: torch.Generator
) -> list[tuple[Tensor, Tensor]]:
    """One training batch as ``[(inputs, labels), ...]``, one group per component, in the given order."""
    counts = mix_counts([c.weight for c in components], batch_size)
    return [make_batch(c.task, n, gen) for c, n in zip(components, counts, strict=True)]


def mix_text(components: tuple[MixComponent, ...]) -> str:
    """The canonical spelling recorded in results (``T:pairs:weight`` joined by commas)."""
    return ",".join(c.spec for c in components)
