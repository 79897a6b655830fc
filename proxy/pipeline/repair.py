"""Turn an extractor's raw output for one chunk into fact candidates, never dropping a chunk silently.

Stages, in order: strict JSON → json-repair → regex extraction → raw-evidence block (the chunk's most
question-relevant sentences, verbatim). The stage that succeeded is the chunk's status.
"""

from __future__ import annotations

import json
import re
from typing import Any

import json_repair
from liquid_memory_proxy.pipeline.sentences import content_words, sentence_spans
from liquid_memory_proxy.pipeline.tokens import count_tokens
from liquid_memory_proxy.pipeline.types import Chunk, FactStatus

_FENCE = re.compile(r"^\s*```(?:json)?\s*|\s*```\s*$", re.IGNORECASE)
_TEXT_FIELD = re.compile(r'"(?:text|fact|statement|evidence)"\s*:\s*"((?:[^"\\\n]|\\.){3,})', re.IGNORECASE)
_LIST_ITEM = re.compile(r"^\s*(?:[-*•]|\d+[.)])\s+(.{8,})$", re.MULTILINE)


def _candidates_from(obj: Any) -> list[dict[str, Any]] | None:
    """Normalise a parsed JSON value to [{"text": ...}], or None when it has no recognisable fact shape."""
    if isinstance(obj, dict):
        for key in ("facts", "fact", "items", "results", "evidence"):
            if key in obj:
                return _candidates_from(obj[key] if isinstance(obj[key], list) else [obj[key]])
        if "text" in obj:
            return _candidates_from([obj])
        return None
    if isinstance(obj, list):
        out: list[dict[str, Any]] = []
        for item in obj:
            if isinstance(item, str) and item.strip():
                out.append({"text": item.strip()})
            elif isinstance(item, dict):
                text = next((item[k] for k in ("text", "fact", "statement", "evidence") if k in item), None)
                if isinstance(text, str | int | float) and str(text).strip():
                    out.append({**item, "text": str(text).strip()})
                else:  # e.g. several {"facts": [...]} objects in a row, parsed as a list by json-repair
                    out.extend(_candidates_from(item) or [])
        return out if out or not obj else None
    return None


def _regex_candidates(raw: str) -> list[dict[str, Any]]:
    """Facts recoverable from text that is not JSON: quoted "text" fields, then bullet/numbered lines."""
    found = [json_repair.loads(f'"{m.group(1)}"') for m in _TEXT_FIELD.finditer(raw)]
    texts = [t for t in found if isinstance(t, str) and t.strip()]
    if not texts:
        texts = [m.group(1).strip() for m in _LIST_ITEM.finditer(raw)]
    return [{"text": t.strip()} for t in texts if len(t.strip()) >= 3]


def raw_evidence(chunk: Chunk, question: str, max_tokens: int) -> list[dict[str, Any]]:
    """The chunk's sentences sharing most words with the question, verbatim, within `max_tokens`."""
    q = set(content_words(question))
    spans = sentence_spans(chunk.text)
    ranked = sorted(
        range(len(spans)),
        key=lambda i: (-len(q & set(content_words(chunk.text[spans[i][0] : spans[i][1]]))), i),
    )
    picked: list[int] = []
    used = 0
    for i in ranked:
        n = count_tokens(chunk.text[spans[i][0] : spans[i][1]])
        if used + n > max_tokens and picked:
            break
        picked.append(i)
        used += n
    return [
        {
            "text": chunk.text[spans[i][0] : spans[i][1]],
            "start": spans[i][0],
            "end": spans[i][1],
            "score": 0.0,
        }
        for i in sorted(picked)
    ]


def repair_output(
    raw: str | None, chunk: Chunk, question: str, evidence_tokens: int
) -> tuple[list[dict[str, Any]], FactStatus]:
    """Candidates and status for one chunk's raw output (None = the extractor call failed)."""
    if raw is not None:
        text = _FENCE.sub("", raw.strip())
        try:
            found = _candidates_from(json.loads(text))
            if found is not None:
                return found, "ok"
        except (json.JSONDecodeError, ValueError):
            pass
        try:
            repaired = json_repair.loads(text)
        except Exception:  # json-repair raises assorted errors on hostile input
            repaired = None
        found = _candidates_from(repaired) if repaired not in ("", None) else None
        by_regex = _regex_candidates(text)
        # json-repair is lenient and can "repair" text into a fragment; if the regex sees more facts,
        # the repair dropped some, so the regex result wins (nothing silently dropped)
        if found and len(found) >= len(by_regex):
            return found, "repaired"
        if by_regex:
            return by_regex, "regex"
    return raw_evidence(chunk, question, evidence_tokens), "raw_evidence"
