"""save -> from_pretrained round trip, what DIR holds, typed errors (unsupported model, bad DIR, other base)."""

from __future__ import annotations

import json

import pytest
import torch

from liquid_memory.hf import CheckpointInvalid, PatchError, UnsupportedArchitecture, from_pretrained, patch_model
from liquid_memory.hf.io import base_fingerprint, merge_lora, save_liquid
from tests.hf.hf_models import perturb_liquid, tiny_model


def _saved(tmp_path, lora=False):
    base = tiny_model("mistral")
    base.save_pretrained(tmp_path / "base")
    fingerprint = base_fingerprint(base)
    model = patch_model(base, window=4, backend="chunked")
    perturb_liquid(model)
    factors = meta = None
    if lora:
        gen = torch.Generator().manual_seed(9)
        name = "model.layers.1.self_attn.v_proj"
        factors = {
            f"{name}.lora_A": torch.randn(2, 32, generator=gen),
            f"{name}.lora_B": torch.randn(16, 2, generator=gen),
        }
        meta = {"rank": 2, "alpha": 4.0, "targets": ["v_proj"]}
        merge_lora(model, factors, meta)  # the trained model holds the merged weights
    save_liquid(model, tmp_path / "lin", base_model=str(tmp_path / "base"), base_sha256=fingerprint, lora=factors,
                lora_meta=meta)  # fmt: skip
    return model


@pytest.mark.parametrize("lora", [False, True])
def test_save_from_pretrained_round_trip_identical_logits(tmp_path, lora):
    model = _saved(tmp_path, lora)
    loaded, _ = from_pretrained(tmp_path / "lin", backend="chunked")
    ids = torch.randint(3, 61, (2, 13), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        assert torch.equal(model(ids, use_cache=False).logits, loaded(ids, use_cache=False).logits)
    stored = sorted(p.name for p in (tmp_path / "lin").iterdir())
    assert stored == sorted(["liquid_config.json", "liquid.safetensors"] + (["lora.safetensors"] if lora else []))
    config = json.loads((tmp_path / "lin" / "liquid_config.json").read_text())
    assert config["window"] == 4 and config["architecture"] == "MistralForCausalLM"


def test_from_pretrained_refuses_a_different_base(tmp_path):
    _saved(tmp_path)
    other = tiny_model("mistral", seed=5)
    other.save_pretrained(tmp_path / "base")  # the referenced base changed under the DIR
    with pytest.raises(CheckpointInvalid, match="differs"):
        from_pretrained(tmp_path / "lin")


def test_bad_dirs_are_typed_errors(tmp_path):
    with pytest.raises(CheckpointInvalid, match="not found"):
        from_pretrained(tmp_path)
    (tmp_path / "liquid_config.json").write_text("{not json")
    with pytest.raises(CheckpointInvalid, match="not valid JSON"):
        from_pretrained(tmp_path)


def test_unsupported_architecture_names_the_supported_ones():
    from transformers import GPT2Config, GPT2LMHeadModel

    model = GPT2LMHeadModel(GPT2Config(n_layer=1, n_embd=16, n_head=2, vocab_size=50))
    with pytest.raises(UnsupportedArchitecture, match="LlamaForCausalLM, MistralForCausalLM, Qwen2ForCausalLM") as info:
        patch_model(model)
    assert isinstance(info.value, NotImplementedError) and info.value.code == "LM702"


def test_patching_twice_and_a_softmax_cache_are_refused():
    from transformers import DynamicCache

    model = patch_model(tiny_model(), window=4, backend="chunked")
    with pytest.raises(UnsupportedArchitecture, match="already patched"):
        patch_model(model)
    ids = torch.randint(3, 61, (1, 5))
    full = DynamicCache(config=model.config)
    full.update(torch.zeros(1, 2, 3, 8), torch.zeros(1, 2, 3, 8), 0)  # layer 0 holds softmax keys already
    with pytest.raises(PatchError, match="softmax keys"):
        model(ids, past_key_values=full, use_cache=True)


def test_from_pretrained_with_int8_weights(tmp_path):
    """``weights="int8"``: LoRA merged first, then the base weights converted (tolerance as in test_weights.py);
    an unknown format is a typed error."""
    from liquid_memory.hf.weights import Int8Linear
    from tests.numerics import rel_err

    model = _saved(tmp_path, lora=True)
    loaded, _ = from_pretrained(tmp_path / "lin", backend="chunked", weights="int8")
    assert isinstance(loaded.model.layers[1].self_attn.v_proj, Int8Linear)
    ids = torch.randint(3, 61, (2, 13), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        assert rel_err(loaded(ids, use_cache=False).logits, model(ids, use_cache=False).logits) < 3e-2
    with pytest.raises(PatchError, match="unknown weight format"):
        from_pretrained(tmp_path / "lin", weights="int3")


def test_from_pretrained_takes_the_global_cache_and_its_score(tmp_path):
    _saved(tmp_path)
    loaded, _ = from_pretrained(tmp_path / "lin", backend="chunked", global_cache=8, cache_score="prompt")
    layers = [layer.self_attn for layer in loaded.model.layers]
    assert {(a.global_cache, a.cache_score) for a in layers} == {(8, "prompt")}
    with pytest.raises(ValueError, match="cache_score"):
        from_pretrained(tmp_path / "lin", backend="chunked", global_cache=8, cache_score="loudest")
