"""Liquid Memory: a linear-memory drop-in for ``torch.nn.MultiheadAttention``."""

__version__ = "0.1.0"
