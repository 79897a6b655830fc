"""Compact serialisation of the facts sent upstream: one line per fact, no pretty-printed JSON."""

from __future__ import annotations

from liquid_memory_proxy.pipeline.types import Fact

HEADER = "Facts from the document, most relevant to the question, in document order"


def render_fact_pack(facts: list[Fact], provenance: bool = True) -> str:
    """`[chunk@start-end] text` lines (or bare `- text` lines); raw-evidence facts are marked as such."""
    if not facts:
        return HEADER + ": (none found)"
    lines = [HEADER + (" ([chunk@start-end] = source span):" if provenance else ":")]
    for f in sorted(facts, key=lambda f: (f.start, f.end)):
        mark = " (raw excerpt)" if f.status == "raw_evidence" else ""
        tag = f"[{f.chunk}@{f.start}-{f.end}]" if provenance else "-"
        lines.append(f"{tag}{mark} {f.text}")
    return "\n".join(lines)
