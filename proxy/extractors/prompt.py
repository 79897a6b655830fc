"""The fact-extraction prompt and JSON schema shared by the generative extractors (SmolLM2, vLLM)."""

from __future__ import annotations

from typing import Any

MAX_FACTS = 8
MAX_FACT_CHARS = 300

SYSTEM_PROMPT = (
    "You extract facts from a text. Reply with JSON only, in the form "
    '{"facts": ["fact 1", "fact 2"]}. Each fact is a short sentence copied or closely paraphrased from the '
    "text, keeping every number, date, name and amount exactly. Include only facts that help answer the "
    'question. If nothing in the text helps, reply {"facts": []}.'
)

FACTS_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "facts": {
            "type": "array",
            "items": {"type": "string", "maxLength": MAX_FACT_CHARS},
            "maxItems": MAX_FACTS,
        }
    },
    "required": ["facts"],
    "additionalProperties": False,
}


def user_prompt(question: str, chunk_text: str) -> str:
    return f"Question: {question}\n\nText:\n{chunk_text}\n\nFacts from the text that help answer the question (JSON):"


def messages(question: str, chunk_text: str) -> list[dict[str, str]]:
    """Chat messages for one chunk (rendered with the model's own chat template)."""
    return [
        {"role": "system", "content": SYSTEM_PROMPT},
        {"role": "user", "content": user_prompt(question, chunk_text)},
    ]
