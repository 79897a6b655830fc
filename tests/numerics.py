"""The project's one relative-error measure: every fast path is compared with its reference through it."""

from __future__ import annotations

import torch


def rel_err(actual: torch.Tensor, expected: torch.Tensor) -> float:
    """‖a − b‖ / ‖b‖ in float64 (‖a − b‖ when b is exactly zero, e.g. a gradient nothing depends on);
    fails loudly on NaN/Inf in either tensor."""
    assert torch.isfinite(actual).all(), "NaN/Inf in result"
    assert torch.isfinite(expected).all(), "NaN/Inf in the expected tensor"
    actual, expected = actual.detach().double(), expected.detach().double()
    diff, norm = (actual - expected).norm(), expected.norm()
    return (diff / norm).item() if norm > 0 else diff.item()
