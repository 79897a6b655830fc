"""linearize on a tiny model: only new parameters move in stage 1, LoRA in stage 2, checkpoints resume,
the JSON log and plot are written, and DIR reloads to the same model."""

from __future__ import annotations

import json

import torch
from hf_models import tiny_model

from liquid_memory.hf import LinearizeConfig, from_pretrained, linearize


class DigitTokenizer:
    """Text of space-separated integers -> those ids (a stand-in tokenizer for the tiny vocab)."""

    def __call__(self, text, return_tensors="pt", add_special_tokens=False):
        return {"input_ids": torch.tensor([[int(t) for t in text.split()]])}


def _text(n=400, seed=0):
    gen = torch.Generator().manual_seed(seed)
    base = torch.randint(3, 61, (16,), generator=gen)  # a repeating pattern with noise: learnable structure
    ids = [int(base[i % 16]) if torch.rand(1, generator=gen) > 0.2 else 5 for i in range(n)]
    return " ".join(map(str, ids))


def _config(base_dir, **kw):
    cfg = dict(window=4, seq_len=32, max_train_tokens=128, steps_per_layer=12, lr=3e-2, lora_steps=0,
               lora_seq_len=16, checkpoint_every=2, base_model=str(base_dir))  # fmt: skip
    cfg.update(kw)
    return LinearizeConfig(**cfg)


def test_stage1_trains_only_new_parameters_and_reduces_the_mse(tmp_path):
    base = tiny_model()
    base.save_pretrained(tmp_path / "base")
    before = {n: p.clone() for n, p in base.named_parameters()}
    log = linearize(
        base, DigitTokenizer(), _text(), tmp_path / "out", _config(tmp_path / "base"), progress=False, backend="chunked"
    )
    for name, p in base.named_parameters():
        if name in before:
            assert torch.equal(p, before[name]), f"stage 1 changed original weight {name}"
    for layer, entry in log["stage1"].items():
        first, last = entry["losses"][0], sum(entry["losses"][-3:]) / 3
        assert last < 0.9 * first, f"layer {layer}: MSE {first:.3g} -> {last:.3g}"
    assert log["tokens"]["stage1"] == 2 * 12 * 32
    assert (tmp_path / "out" / "linearize_loss.png").stat().st_size > 1000
    assert json.loads((tmp_path / "out" / "linearize_log.json").read_text())["stage1"].keys() == {"0", "1"}


def test_lora_stage_resume_and_reload(tmp_path):
    base = tiny_model()
    base.save_pretrained(tmp_path / "base")
    out = tmp_path / "out"
    first = linearize(tiny_model(), DigitTokenizer(), _text(), out, _config(tmp_path / "base", lora_steps=2),
                      progress=False, backend="chunked")  # fmt: skip
    # "interrupted" after 2 LoRA steps: resume with a longer plan; stage 1 is not redone
    model = tiny_model()
    log = linearize(model, DigitTokenizer(), _text(), out, _config(tmp_path / "base", lora_steps=4), resume=True,
                    progress=False, backend="chunked")  # fmt: skip
    assert log["resumed"] == 1
    assert log["stage1"] == first["stage1"] and log["tokens"]["stage1"] == first["tokens"]["stage1"]
    assert len(log["stage2"]) == 4 and log["stage2"][:2] == first["stage2"]
    assert log["tokens"]["stage2"] == 4 * 16
    changed = [
        n for n, p in model.named_parameters() if "v_proj.weight" in n and not torch.equal(p, base.get_parameter(n))
    ]
    assert changed, "LoRA was not merged into the projections"
    loaded, _ = from_pretrained(out, backend="chunked")
    ids = torch.randint(3, 61, (1, 20), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        torch.testing.assert_close(loaded(ids, use_cache=False).logits, model(ids, use_cache=False).logits)
