"""LiquidLM tools: training (one process or torchrun/DDP), chat, web UI and the LM benchmark."""
