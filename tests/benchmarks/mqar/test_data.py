"""The MQAR generator follows Zoology's layout: vocab split, queries after the context, labels only at queries."""

from __future__ import annotations

import pytest
import torch

from benchmarks.mqar.data import IGNORE, MQARTask, gap_log_probs, make_batch, make_split


def _batch(task: MQARTask, n: int = 64, seed: int = 0):
    return make_batch(task, n, torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("task", [MQARTask(64, 4, 128), MQARTask(256, 16, 8192), MQARTask(128, 32, 512)])
def test_layout_keys_values_queries_labels(task: MQARTask) -> None:
    inputs, labels = _batch(task)
    n, half = task.num_kv_pairs, task.vocab_size // 2
    assert inputs.shape == labels.shape == (64, task.seq_len)
    assert inputs.dtype == labels.dtype == torch.long
    assert int(inputs.min()) >= 0 and int(inputs.max()) < task.vocab_size
    keys, values = inputs[:, 0 : 2 * n : 2], inputs[:, 1 : 2 * n : 2]
    assert bool(((keys >= 1) & (keys < half)).all()) and bool(((values >= half) & (values < task.vocab_size)).all())
    for row in range(inputs.shape[0]):
        assert len(set(keys[row].tolist())) == n and len(set(values[row].tolist())) == n
        pairs = dict(zip(keys[row].tolist(), values[row].tolist(), strict=True))
        scored = (labels[row] != IGNORE).nonzero().flatten()
        assert scored.numel() == n  # one answer per key
        assert bool((scored >= 2 * n).all()) and bool(((scored - 2 * n) % 2 == 0).all())
        queried = inputs[row, scored].tolist()
        assert sorted(queried) == sorted(pairs)  # every key is queried exactly once
        assert labels[row, scored].tolist() == [pairs[k] for k in queried]  # the label is that key's value
    assert bool((labels[:, : 2 * n] == IGNORE).all())  # nothing in the context is scored


def test_without_random_non_queries_the_filler_is_zero() -> None:
    task = MQARTask(64, 4, 128, random_non_queries=False)
    inputs, labels = _batch(task, 16)
    filler = labels == IGNORE
    filler[:, : 2 * task.num_kv_pairs] = False
    assert bool((inputs[filler] == 0).all())
    noisy, _ = _batch(MQARTask(64, 4, 128), 16)
    assert int((noisy == 0).sum()) < int((inputs == 0).sum()) // 10


def test_seeded_and_reproducible() -> None:
    task = MQARTask(64, 8, 256)
    a, b = make_split(task, 8, seed=3), make_split(task, 8, seed=3)
    c = make_split(task, 8, seed=4)
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    assert not torch.equal(a[0], c[0])


def test_gap_distribution_matches_sequential_weighted_draws() -> None:
    """Gumbel-top-k gives the same gap distribution as sequential draws without replacement (numpy.choice's)."""
    task = MQARTask(64, 4, 128)
    inputs, labels = _batch(task, 4000, seed=1)
    gaps = ((labels != IGNORE).nonzero()[:, 1] - task.context_len) // 2
    ours = torch.bincount(gaps, minlength=task.gap_slots).double()
    gen = torch.Generator().manual_seed(2)
    probs = gap_log_probs(task).exp().expand(4000, -1)
    ref_gaps = torch.multinomial(probs, task.num_kv_pairs, replacement=False, generator=gen).flatten()
    ref = torch.bincount(ref_gaps, minlength=task.gap_slots).double()
    total_variation = 0.5 * (ours / ours.sum() - ref / ref.sum()).abs().sum()
    assert total_variation < 0.03, total_variation
    uniform = torch.full_like(ref, 1.0 / task.gap_slots)
    assert 0.5 * (ours / ours.sum() - uniform).abs().sum() > 0.05  # the power law is really there


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"seq_len": 63}, "even"),
        ({"seq_len": 64, "num_kv_pairs": 17}, "cannot hold"),
        ({"num_kv_pairs": 0}, "num_kv_pairs"),
        ({"seq_len": 64, "num_kv_pairs": 4, "vocab_size": 64}, "vocab_size"),
        ({"power_a": 0.0}, "power_a"),
    ],
)
def test_bad_settings_are_clear_errors(kwargs: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        MQARTask(**kwargs)


def test_bad_batch_size() -> None:
    with pytest.raises(ValueError, match="batch_size"):
        _batch(MQARTask(64, 4, 128), 0)
