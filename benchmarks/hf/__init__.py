"""Benchmarks of the Hugging Face integration (SmolLM2): serving speed against the original and llama.cpp."""
