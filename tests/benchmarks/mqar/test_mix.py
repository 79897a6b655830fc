"""The training mixture: parsing, per-batch counts, deterministic groups, and a loss equal to a padded mixed batch."""

from __future__ import annotations

import json

import pytest
import torch
import torch.nn.functional as F

from benchmarks.__main__ import main as benchmarks_main
from benchmarks.mqar.data import IGNORE, MQARTask, make_batch
from benchmarks.mqar.mix import make_mixed_batch, mix_counts, mix_text, parse_mix
from benchmarks.mqar.models import MODEL_SPECS, ModelShape, answer_logits, build_model
from benchmarks.mqar.train import answer_loss, mixed_answer_loss

TARGET = MQARTask(seq_len=32, num_kv_pairs=4, vocab_size=64)


def test_parse_mix_inherits_the_target_vocabulary_and_defaults_weight_one() -> None:
    mix = parse_mix(" 8:1:2, 16:2 ,32:4:0.5", TARGET)
    assert [(c.task.seq_len, c.task.num_kv_pairs, c.weight) for c in mix] == [(8, 1, 2.0), (16, 2, 1.0), (32, 4, 0.5)]
    assert all(c.task.vocab_size == 64 and c.task.power_a == TARGET.power_a for c in mix)
    assert mix_text(mix) == "8:1:2,16:2:1,32:4:0.5"
    assert parse_mix(mix_text(mix), TARGET) == mix  # the recorded spelling reproduces the mixture


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("64:4", "longer than the evaluated setting"),
        ("16", "seq_len:pairs[:weight]"),
        ("16:2:x", "seq_len:pairs[:weight]"),
        ("16:2:0", "> 0"),
        ("16:2:-1", "> 0"),
        ("15:2", "even"),
        ("16:8", "4 * num_kv_pairs"),
    ],
)
def test_parse_mix_rejects_bad_items(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message.replace("*", r"\*").replace("[", r"\[").replace("]", r"\]")):
        parse_mix(text, TARGET)


def test_mix_counts_are_proportional_sum_to_the_batch_and_round_by_largest_remainder() -> None:
    assert mix_counts([2, 1, 1], 32) == [16, 8, 8]
    assert mix_counts([1, 1, 1], 32) == [11, 11, 10]  # equal remainders go to the earlier components
    assert mix_counts([1, 2], 10) == [3, 7]  # 3.33 / 6.67: the larger remainder gets the spare example
    assert mix_counts([5.0], 7) == [7]
    with pytest.raises(ValueError, match="too small"):
        mix_counts([100, 1], 8)


def test_mixed_batch_groups_are_deterministic_and_drawn_in_order_from_one_stream() -> None:
    mix = parse_mix("8:1:2,16:2:1,32:4:1", TARGET)
    groups = make_mixed_batch(mix, 8, torch.Generator().manual_seed(3))
    assert [tuple(x.shape) for x, _ in groups] == [(4, 8), (2, 16), (2, 32)]
    for (x, y), comp in zip(groups, mix, strict=True):
        assert x.shape == y.shape and bool(((y != IGNORE).sum(1) == comp.task.num_kv_pairs).all())
    again = make_mixed_batch(mix, 8, torch.Generator().manual_seed(3))
    assert all(torch.equal(a[0], b[0]) and torch.equal(a[1], b[1]) for a, b in zip(groups, again, strict=True))
    gen = torch.Generator().manual_seed(3)  # the same stream, drawn component by component
    manual = [make_batch(c.task, n, gen) for c, n in zip(mix, [4, 2, 2], strict=True)]
    assert all(torch.equal(a[0], b[0]) and torch.equal(a[1], b[1]) for a, b in zip(groups, manual, strict=True))
    other = make_mixed_batch(mix, 8, torch.Generator().manual_seed(4))
    assert not torch.equal(groups[2][0], other[2][0])


@pytest.mark.parametrize("name", ["attention", "liquid-qkvconv-u"])
def test_mixed_loss_equals_the_loss_of_one_right_padded_batch(name: str) -> None:
    """Causal models: running each length separately scores exactly what a padded mixed batch scores."""
    model = build_model(MODEL_SPECS[name], ModelShape(16, 2, 2, "chunked"), TARGET, seed=0)
    groups = make_mixed_batch(parse_mix("8:1:1,16:2:1,32:4:2", TARGET), 8, torch.Generator().manual_seed(0))
    padded_x = torch.cat([F.pad(x, (0, TARGET.seq_len - x.shape[1]), value=5) for x, _ in groups])
    padded_y = torch.cat([F.pad(y, (0, TARGET.seq_len - y.shape[1]), value=IGNORE) for _, y in groups])
    with torch.no_grad():
        expected, _ = answer_loss(model, answer_logits, padded_x, padded_y)
        got = mixed_answer_loss(model, answer_logits, groups)
        means = torch.stack([answer_loss(model, answer_logits, x, y)[0] for x, y in groups]).mean()
    assert torch.isfinite(got) and abs(float(got) - float(expected)) < 1e-5 * float(expected)
    # and it is not the plain mean of the groups' means (groups have different numbers of answers)
    assert abs(float(means) - float(expected)) > 1e-4


def test_cli_records_the_mixture_and_rejects_a_bad_one(tmp_path, capsys) -> None:
    out = tmp_path / "mix.json"
    base = ["mqar", "--settings", "32:4:16", "--vocab", "64", "--batch-size", "8", "--eval-examples",
            "16", "--models", "attention", "--max-steps", "2", "--eval-every", "2", "--json", str(out)]  # fmt: skip
    assert benchmarks_main([*base, "--train-mix", "16:2:3,32:4"]) == 0
    run = json.loads(out.read_text())["runs"][0]
    assert run["train"]["train_mix"] == "16:2:3,32:4:1" and run["setting"].endswith("-mix[16:2:3,32:4:1]")
    assert run["task"]["seq_len"] == 32  # evaluated on the target setting ...
    assert [list(h["mix_accuracy"]) for h in run["history"]] == [["16:2"]]  # ... and on the other mix settings
    assert 0.0 <= run["history"][0]["mix_accuracy"]["16:2"] <= 1.0
    assert benchmarks_main(base) == 0  # without the mixture: a different run, not skipped
    runs = json.loads(out.read_text())["runs"]
    assert [r["train"]["train_mix"] for r in runs] == ["16:2:3,32:4:1", ""]
    assert "mix_accuracy" not in runs[1]["history"][0]
    capsys.readouterr()
    assert benchmarks_main([*base, "--train-mix", "64:4"]) == 2
    err = capsys.readouterr().err
    assert "longer than the evaluated setting" in err and "Traceback" not in err
