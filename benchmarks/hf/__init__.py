"""SmolLM2 linearized with LiquidMemory against the original: quality, decode speed and state."""
