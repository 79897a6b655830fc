"""Retrieval-shaped stage 2 (hf/recall_data.py, lora_recall_share / lora_answer_weight / lora_global_cache)."""

from __future__ import annotations

import random

import pytest
import torch

from liquid_memory.hf import linearize
from liquid_memory.hf.io import read_config
from liquid_memory.hf.linearization import distill_loss
from liquid_memory.hf.recall_data import recall_sequence
from tests.hf.hf_models import tiny_model
from tests.hf.test_linearize import _config, _text


class WordTokenizer:
    """Whitespace words → ids of a vocabulary grown on first sight, within the tiny models' 61 ids (3…60);
    integers written as text keep their own id, so the linearization's digit text tokenizes as before."""

    def __init__(self) -> None:
        self.vocab: dict[str, int] = {}

    def _id(self, word: str) -> int:
        if word.isdigit() and 3 <= int(word) < 61:
            return int(word)
        return self.vocab.setdefault(word, 3 + len(self.vocab) % 58)

    def __call__(self, text, return_tensors=None, add_special_tokens=False):
        ids = [self._id(w) for w in text.split()]
        return {"input_ids": torch.tensor([ids]) if return_tensors == "pt" else ids}


def test_recall_sequence_places_facts_early_and_marks_each_answer():
    tok = WordTokenizer()
    filler = torch.full((2000,), 0)  # id 0 never comes from the tokenizer: facts are easy to find
    for seed in range(20):
        ids, answers = recall_sequence(tok, filler, 300, random.Random(seed))
        assert ids.shape == answers.shape == (300,)
        words = {i: w for w, i in tok.vocab.items()}
        tail = ids.tolist().index(tok._id("Questions:"))
        fact_positions = [p for p in range(tail) if ids[p] == tok._id("The")]
        assert fact_positions and max(fact_positions) < 150, "facts must sit in the first half"
        assert not answers[:tail].any(), "answers come after the questions start"
        # every answer span is the value of a fact stated earlier ("... is VALUE." ... "is VALUE.")
        spans, p = [], 0
        while p < 300:
            if answers[p]:
                q = p
                while q < 300 and answers[q]:
                    q += 1
                spans.append(ids[p:q].tolist())
                p = q
            p += 1
        assert spans and all(len(s) == 1 for s in spans)  # " 40721." is one word here
        for span in spans:
            stated = [p for p in fact_positions if ids[p + 4] == span[0]]  # The <noun> <kind> is VALUE.
            assert stated, f"answer {words.get(span[0], span[0])} was never stated (seed {seed})"


def test_recall_sequence_refuses_a_length_without_room():
    with pytest.raises(ValueError, match="too short"):
        recall_sequence(WordTokenizer(), torch.zeros(100, dtype=torch.long), 12, random.Random(0))


def test_focus_term_is_the_mean_kl_over_the_marked_positions():
    gen = torch.Generator().manual_seed(0)
    student, teacher = torch.randn(1, 6, 11, generator=gen), torch.randn(1, 6, 11, generator=gen)
    focus = torch.tensor([[False, True, False, False, True, False]])
    log_p, log_q = teacher.log_softmax(-1), student.log_softmax(-1)
    kl = (log_p.exp() * (log_p - log_q)).sum(-1)
    got = distill_loss(student, teacher, focus=focus, focus_weight=2.0)
    assert torch.allclose(got, kl.mean() + 2.0 * kl[focus].mean())
    assert torch.allclose(distill_loss(student, teacher, focus=focus, focus_weight=0.0), kl.mean())


def test_retrieval_shaped_stage2_with_the_global_cache_trains_saves_and_reloads(tmp_path):
    from liquid_memory.hf import from_pretrained

    base = tiny_model()
    base.save_pretrained(tmp_path / "base")
    cfg = _config(tmp_path / "base", lora_steps=4, lora_seq_len=64, lora_recall_share=1.0, lora_answer_weight=1.0,
                  lora_global_cache=3)  # fmt: skip
    log = linearize(tiny_model(), WordTokenizer(), _text(), tmp_path / "out", cfg, progress=False, backend="chunked")
    assert len(log["stage2"]) == 4 and all(torch.isfinite(torch.tensor(log["stage2"])))
    assert read_config(tmp_path / "out")["global_cache"] == 3
    model, _ = from_pretrained(tmp_path / "out", backend="chunked")
    assert model.model.layers[0].self_attn.global_cache == 3
    ids = torch.randint(3, 61, (1, 30), generator=torch.Generator().manual_seed(0))
    assert torch.isfinite(model(ids, use_cache=False).logits).all()


def test_recall_share_must_be_a_share():
    with pytest.raises(ValueError, match="lora_recall_share"):
        _config("x", lora_recall_share=1.5)
