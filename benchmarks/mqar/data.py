"""Zoology's multi-query associative recall (MQAR) task, generated on the fly with a seeded torch generator.

Layout of one example (``T = seq_len``, ``n = num_kv_pairs``), as in Arora, Eyuboglu et al., "Zoology" (2023)::

    positions 0 .. 2n-1   k_1 v_1 k_2 v_2 ... k_n v_n        keys from [1, V/2), values from [V/2, V), no repeats
    positions 2n .. T-1   every key once more as a query, at even offsets 2n + 2g (g = "gap" slot), the rest noise

The label at a query position is that key's value; every other label is ``IGNORE`` so the loss and the accuracy
count answer positions only. Gap slots are drawn without replacement with probability ``∝ g^(power_a - 1)``
(``power_a = 0.01``: a power law favouring queries close to the context, as repeated bigrams in text are).
We draw that ordered sample with the Gumbel-top-k trick, which has the same distribution as sequential weighted
draws without replacement, so a whole batch is drawn without a Python loop.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import Tensor

IGNORE = -100  # label of positions that are not scored (torch's cross_entropy default ignore_index)


@dataclass(frozen=True)
class MQARTask:
    """One MQAR setting. Raises ``ValueError`` for a setting the layout above cannot hold."""

    seq_len: int = 256
    num_kv_pairs: int = 16
    vocab_size: int = 8192
    power_a: float = 0.01
    random_non_queries: bool = True

    def __post_init__(self) -> None:
        if self.seq_len <= 0 or self.seq_len % 2:
            raise ValueError(f"seq_len must be a positive even number, got {self.seq_len}")
        if self.num_kv_pairs <= 0:
            raise ValueError(f"num_kv_pairs must be > 0, got {self.num_kv_pairs}")
        if 4 * self.num_kv_pairs > self.seq_len:
            raise ValueError(
                f"seq_len {self.seq_len} cannot hold {self.num_kv_pairs} key-value pairs and their queries "
                f"(needs seq_len >= 4 * num_kv_pairs = {4 * self.num_kv_pairs})"
            )
        if self.vocab_size <= self.seq_len or self.vocab_size // 2 - 1 < self.num_kv_pairs:
            raise ValueError(
                f"vocab_size {self.vocab_size} is too small: it must exceed seq_len ({self.seq_len}) and leave at "
                f"least num_kv_pairs ({self.num_kv_pairs}) distinct keys in [1, vocab_size // 2)"
            )
        if not 0.0 < self.power_a <= 1.0:
            raise ValueError(f"power_a must be in (0, 1], got {self.power_a}")

    @property
    def context_len(self) -> int:
        """Tokens taken by the key-value pairs at the start."""
        return 2 * self.num_kv_pairs

    @property
    def gap_slots(self) -> int:
        """How many even offsets after the context a query may take."""
        return (self.seq_len - self.context_len) // 2

    def as_dict(self) -> dict:
        return asdict(self)


def _distinct(batch: int, low: int, high: int, count: int, gen: torch.Generator) -> Tensor:
    """``count`` distinct integers from ``[low, high)`` per row, uniformly, in random order."""
    scores = torch.rand(batch, high - low, generator=gen)
    return scores.topk(count, dim=1).indices + low


def gap_log_probs(task: MQARTask) -> Tensor:
    """Log-probabilities of the gap slots ``0 .. gap_slots-1`` (the power law of the module docstring)."""
    ranks = torch.arange(1, task.gap_slots + 1, dtype=torch.float64)
    weights = task.power_a * ranks ** (task.power_a - 1.0)
    return (weights / weights.sum()).log()


def make_batch(task: MQARTask, batch_size: int, gen: torch.Generator) -> tuple[Tensor, Tensor]:
    """``(inputs, labels)``, both ``[batch_size, seq_len]`` int64; labels are ``IGNORE`` except at queries."""
    if batch_size <= 0:
        raise ValueError(f"batch_size must be > 0, got {batch_size}")
    n, T, V = task.num_kv_pairs, task.seq_len, task.vocab_size
    half = V // 2
    keys = _distinct(batch_size, 1, half, n, gen)
    values = _distinct(batch_size, half, V, n, gen)
    # Gumbel-top-k: the n largest of log p + Gumbel noise are an ordered weighted sample without replacement.
    uniform = torch.rand(batch_size, task.gap_slots, generator=gen, dtype=torch.float64).clamp_min(1e-300)
    gumbel = -torch.log(-torch.log(uniform).clamp_max(-1e-300))
    gaps = (gap_log_probs(task) + gumbel).topk(n, dim=1).indices

    # Build T + 1 tokens and shift by one, exactly as a next-token model sees them: the label of a query
    # position is the token after it in the unshifted layout, i.e. that key's value.
    full = torch.zeros(batch_size, T + 1, dtype=torch.long)
    full[:, 0 : 2 * n : 2] = keys
    full[:, 1 : 2 * n : 2] = values
    query_pos = task.context_len + 2 * gaps
    full.scatter_(1, query_pos, keys)
    targets = torch.full((batch_size, T + 1), IGNORE, dtype=torch.long)
    targets.scatter_(1, query_pos + 1, values)
    inputs, labels = full[:, :-1].clone(), targets[:, 1:].clone()
    if task.random_non_queries:
        noise = torch.randint(V, inputs.shape, generator=gen)
        inputs = torch.where(inputs == 0, noise, inputs)
    return inputs, labels


def make_split(task: MQARTask, num_examples: int, seed: int) -> tuple[Tensor, Tensor]:
    """A fixed set of examples (e.g. the held-out evaluation set) from its own seed."""
    gen = torch.Generator().manual_seed(seed)
    return make_batch(task, num_examples, gen)
