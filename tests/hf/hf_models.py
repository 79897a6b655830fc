"""Tiny random Llama / Mistral / Qwen2 models built in the tests (no download) and small helpers."""

from __future__ import annotations

import torch

ARCHS = ("llama", "mistral", "qwen2")


def tiny_model(arch: str = "llama", *, seed: int = 0, layers: int = 2, dtype=torch.float32):
    """A random 2-layer model: hidden 32, 4 query heads sharing 2 KV heads (GQA), head_dim 8."""
    import transformers

    cls_cfg, cls_model = {
        "llama": (transformers.LlamaConfig, transformers.LlamaForCausalLM),
        "mistral": (transformers.MistralConfig, transformers.MistralForCausalLM),
        "qwen2": (transformers.Qwen2Config, transformers.Qwen2ForCausalLM),
    }[arch]
    config = cls_cfg(
        vocab_size=61, hidden_size=32, intermediate_size=64, num_hidden_layers=layers, num_attention_heads=4,
        num_key_value_heads=2, max_position_embeddings=512, rope_theta=10000.0, pad_token_id=0, eos_token_id=1,
        bos_token_id=2, tie_word_embeddings=False,
    )  # fmt: skip
    torch.manual_seed(seed)
    model = cls_model(config).to(dtype).eval()
    model.config._attn_implementation = "sdpa"
    return model


def perturb_liquid(model, seed: int = 1, scale: float = 0.3) -> None:
    """Move the new parameters away from their init (so tests exercise trained-looking values)."""
    from liquid_memory.hf import liquid_parameters

    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for _, p in liquid_parameters(model):
            p.add_(torch.randn(p.shape, generator=gen, dtype=torch.float64).to(p.dtype) * scale)
