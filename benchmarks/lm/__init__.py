"""LiquidLM comparison runs: liquid vs liquidnet vs attention language models on the same tokens."""
