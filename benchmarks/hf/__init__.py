"""SmolLM2 linearized with LiquidMemory against the original: quality, retrieval, decode speed and state, and
serving speed against llama.cpp."""
