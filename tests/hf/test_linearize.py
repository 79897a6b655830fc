"""linearize on a tiny model: only new parameters move in stage 1, LoRA in stage 2, checkpoints resume,
the JSON log and plot are written, and DIR reloads to the same model."""

from __future__ import annotations

import json

import pytest
import torch

from liquid_memory.hf import LinearizeConfig, from_pretrained, linearize
from tests.hf.hf_models import tiny_model


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
    cfg = dict(window=4, sinks=0, seq_len=32, max_train_tokens=128, steps_per_layer=12, lr=3e-2, warmup_steps=0,
               lora_steps=0, lora_seq_len=16, checkpoint_every=2, base_model=str(base_dir))  # fmt: skip
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
    cfg = dict(lora_objective="next_token")  # the LM-loss objective (the distillation one is tested below)
    first = linearize(tiny_model(), DigitTokenizer(), _text(), out, _config(tmp_path / "base", lora_steps=2, **cfg),
                      progress=False, backend="chunked")  # fmt: skip
    # "interrupted" after 2 LoRA steps: resume with a longer plan; stage 1 is not redone
    model = tiny_model()
    log = linearize(model, DigitTokenizer(), _text(), out, _config(tmp_path / "base", lora_steps=4, **cfg),
                    resume=True, progress=False, backend="chunked")  # fmt: skip
    assert log["resumed"] == 1
    assert log["config"]["lora_steps"] == 4 and [c["lora_steps"] for c in log["config_history"]] == [2]
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


def _sharp_model():
    """The tiny model with larger weights: peaked next-token distributions, so a KL has something to measure."""
    model = tiny_model()
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.dim() == 2:
                p.mul_(10 if "lm_head" in name or "embed" in name else 4)
    return model


def test_distillation_stage_lowers_kl_to_the_original_and_moves_only_lora_and_liquid(tmp_path):
    """Stage 2 'distill' (teacher: the unpatched original) brings the model closer to the original than stage 1
    alone, on fixed text; embeddings, MLP and norms stay the original's, q/k/v/o change (LoRA merged)."""
    from liquid_memory.hf.linearization import distill_loss

    _sharp_model().save_pretrained(tmp_path / "base")
    ids = DigitTokenizer()(_text())["input_ids"][:, :128].view(8, 16)
    original = _sharp_model()
    with torch.no_grad():
        reference = original(ids).logits
    kl = {}
    for steps in (0, 24):
        cfg = _config(tmp_path / "base", steps_per_layer=4, lora_steps=steps, lora_lr=2e-3, checkpoint_every=100)
        model = _sharp_model()
        log = linearize(model, DigitTokenizer(), _text(), tmp_path / f"out{steps}", cfg, progress=False,
                        backend="chunked")  # fmt: skip
        with torch.no_grad():
            kl[steps] = distill_loss(model(ids, use_cache=False).logits, reference).item()
    assert log["config"]["lora_objective"] == "distill" and len(log["stage2"]) == 24
    assert 0 < kl[24] < 0.85 * kl[0], kl
    for name, p in model.named_parameters():
        if ".liquid." in name:
            continue
        same = torch.equal(p, original.get_parameter(name))
        adapted = any(f"self_attn.{t}." in name for t in ("q_proj", "k_proj", "v_proj", "o_proj"))
        assert same != adapted, f"{name}: {'unchanged' if same else 'changed'}"


def test_distill_loss_is_kl_to_the_teacher():
    from liquid_memory.hf.linearization import distill_loss

    gen = torch.Generator().manual_seed(0)
    t, s = torch.randn(5, 7, generator=gen), torch.randn(5, 7, generator=gen)
    p, q = torch.softmax(t, -1), torch.softmax(s, -1)
    want = (p * (p.log() - q.log())).sum(-1).mean()
    torch.testing.assert_close(distill_loss(s, t), want)
    assert distill_loss(t, t).abs() < 1e-6


def test_unknown_stage2_objective_is_rejected(tmp_path):
    with pytest.raises(ValueError, match="lora_objective"):
        _config(tmp_path, lora_objective="mse")


def test_distill_loss_adds_cross_entropy_on_the_teachers_argmax():
    from liquid_memory.hf.linearization import distill_loss

    gen = torch.Generator().manual_seed(1)
    t, s = torch.randn(2, 5, 7, generator=gen), torch.randn(2, 5, 7, generator=gen)
    ce = torch.nn.functional.cross_entropy(s.reshape(-1, 7), t.argmax(-1).reshape(-1))
    torch.testing.assert_close(distill_loss(s, t, 0.5), distill_loss(s, t) + 0.5 * ce)


def test_mlp_lora_targets_are_trained_merged_and_reloaded(tmp_path):
    """lora_targets='attn_mlp': the MLP projections change too, the DIR records them and reloads to the same model."""
    _sharp_model().save_pretrained(tmp_path / "base")
    original = _sharp_model()
    cfg = _config(tmp_path / "base", steps_per_layer=2, lora_steps=4, lora_lr=2e-3, lora_targets="attn_mlp",
                  lora_ce_weight=0.5, checkpoint_every=100)  # fmt: skip
    model = _sharp_model()
    linearize(model, DigitTokenizer(), _text(), tmp_path / "out", cfg, progress=False, backend="chunked")
    for name, p in model.named_parameters():
        if ".liquid." in name:
            continue
        adapted = any(f".{t}." in name for t in ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj",
                                                  "down_proj"))  # fmt: skip
        assert torch.equal(p, original.get_parameter(name)) != adapted, name
    meta = json.loads((tmp_path / "out" / "liquid_config.json").read_text())["lora"]
    assert meta["targets"][-3:] == ["gate_proj", "up_proj", "down_proj"]
    loaded, _ = from_pretrained(tmp_path / "out", backend="chunked")
    ids = torch.randint(3, 61, (1, 20), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        torch.testing.assert_close(loaded(ids, use_cache=False).logits, model(ids, use_cache=False).logits)


def test_unknown_lora_targets_are_rejected(tmp_path):
    with pytest.raises(ValueError, match="lora_targets"):
        _config(tmp_path, lora_targets="everything")


def test_sinks_default_by_window_and_explicit_sinks_at_window_zero():
    assert LinearizeConfig().sinks == 4 and LinearizeConfig(window=0).sinks == 0  # unset: pure liquid at window 0
    assert LinearizeConfig(window=0, sinks=2).sinks == 2
    with pytest.raises(ValueError, match="sinks"):
        LinearizeConfig(sinks=-1)


def test_defaults_are_the_documented_smollm2_recipe():
    """The defaults are the recipe README_INTEGRATION §8.2 documents and the SmolLM2 results page measured (53 of the
    60 CPU-minutes): changing one without a new measurement fails here."""
    got = LinearizeConfig()
    recipe = dict(window=64, sinks=4, seq_len=2048, max_train_tokens=32768, steps_per_layer=256, warmup_steps=8,
                  lr=1e-2, lora_steps=144, lora_seq_len=512, lora_lr=1e-3, lora_objective="distill",
                  lora_targets="attn")  # fmt: skip
    assert {k: getattr(got, k) for k in recipe} == recipe


def test_window_zero_with_sinks_calibrates_trains_and_reloads(tmp_path):
    """window 0 + 2 sink keys: β is calibrated (it no longer cancels), stage 1 lowers the MSE, DIR reloads."""
    base = tiny_model()
    base.save_pretrained(tmp_path / "base")
    model = tiny_model()
    cfg = _config(tmp_path / "base", window=0, sinks=2)
    log = linearize(model, DigitTokenizer(), _text(), tmp_path / "out", cfg, progress=False, backend="chunked")
    assert all(layer.self_attn.window == 0 and layer.self_attn.sinks == 2 for layer in model.model.layers)
    for layer, entry in log["stage1"].items():
        first, last = entry["losses"][0], sum(entry["losses"][-3:]) / 3
        assert last < 0.9 * first, f"layer {layer}: MSE {first:.3g} -> {last:.3g}"
    beta = model.model.layers[0].self_attn.liquid.mix_log_scale
    assert bool((beta != 0).all()) and bool(torch.isfinite(beta).all())
    loaded = from_pretrained(tmp_path / "out", backend="chunked")[0]
    assert loaded.model.layers[0].self_attn.sinks == 2
    ids = torch.randint(3, 61, (1, 20), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        assert torch.equal(loaded(ids).logits, model(ids).logits)
