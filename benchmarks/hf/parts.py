"""The SmolLM2 benchmark's partial results: parts measured by separate processes (``--tag``), merged in file-name
order (``--combine``) with every figure a later part replaces named."""

from __future__ import annotations

from typing import Any


def merge(a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
    """Deep merge of two partial results (b wins on conflicts)."""
    out = dict(a)
    for key, value in b.items():
        out[key] = merge(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


def combine_parts(parts: list[tuple[str, dict[str, Any]]]) -> tuple[dict[str, Any], list[str]]:
    """Merge partial results in the given order (a later part wins) and say which figures a later part replaced.

    Figures are compared two levels deep (e.g. ``perplexity.pure_after``), the level a re-measurement replaces, and
    reported only when the value changes; ``provenance`` entries (notes) and scalar settings are not reported.
    """
    result: dict[str, Any] = {}
    owner: dict[str, str] = {}
    replaced = []
    for name, part in parts:
        for key, value in part.items():
            subkeys = value if isinstance(value, dict) and key != "provenance" else {}
            for sub, figure in subkeys.items():
                path = f"{key}.{sub}"
                if not isinstance(figure, dict):  # a setting (prompts, new_tokens), not a measured figure
                    continue
                if path in owner and result[key][sub] != figure:
                    replaced.append(f"{path}: {name} replaces {owner[path]}")
                owner[path] = name
        result = merge(result, part)
    return result, replaced
