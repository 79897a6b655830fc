"""Which part of a chat request is the document, which is the question, and what goes upstream.

The rule (documented in proxy/README.md, tested in tests/proxy/test_messages.py):

1. `system` / `developer` messages are instructions: forwarded verbatim, never compressed.
2. `assistant` messages are earlier answers: forwarded verbatim, in place.
3. The **last `user` message is the question**. Every earlier `user` message is **document** (joined in
   order with blank lines) and is replaced upstream by ONE user message holding the fact pack, placed where
   the first document message was.
4. With a single `user` message, it is split: if its content is a list of text parts, the last part is the
   question and the earlier parts are the document; if it is a string, its final paragraph (after the last
   blank line, else after the last line break) is the question and everything before it is the document.
5. If there is no document part (one short message), the request is forwarded unchanged when it is at most
   PASSTHROUGH_MAX_TOKENS tokens; a larger single block is a 400 that says how to separate document and
   question.
6. `content` is a string or a list of `{"type": "text", "text": ...}` parts (joined with newlines); other
   part types (images, audio) are a 400. `tool` / `function` messages are a 501 (tools are unsupported).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from liquid_memory_proxy.errors import bad_request, not_implemented
from liquid_memory_proxy.schemas import ChatMessage

FACT_PACK_HEADER = (
    "The user supplied a long document. A local extractor kept only the parts relevant to the question, "
    "listed below with their source chunk and character span. Answer from these facts; if they are not "
    "enough, say so.\n\n"
)


@dataclass
class SplitRequest:
    """A chat request taken apart: `document` may be empty (nothing to compress)."""

    document: str
    question: str
    # Upstream messages with a placeholder (None) where the fact-pack message goes.
    template: list[dict[str, Any] | None] = field(default_factory=list)
    question_index: int = -1  # index in `template` of the question message
    question_prefix_split: bool = False  # True when the question was cut out of a single user message

    @property
    def has_document(self) -> bool:
        return bool(self.document.strip())


def content_text(message: ChatMessage, index: int) -> str:
    """The message text: a string, or text parts joined with newlines. Non-text parts are a 400."""
    content = message.content
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    texts = []
    for j, part in enumerate(content):
        if part.type != "text" or part.text is None:
            raise bad_request(
                f"Only text content parts are supported (got type '{part.type}'). Send the document as text.",
                param=f"messages.{index}.content.{j}",
                code="unsupported_content_type",
            )
        texts.append(part.text)
    return "\n".join(texts)


def _split_single(message: ChatMessage, index: int) -> tuple[str, str]:
    """(document, question) out of a single user message (rule 4)."""
    content = message.content
    if isinstance(content, list) and len(content) > 1:
        for j, part in enumerate(content):
            if part.type != "text" or part.text is None:
                raise bad_request(
                    f"Only text content parts are supported (got type '{part.type}').",
                    param=f"messages.{index}.content.{j}",
                    code="unsupported_content_type",
                )
        return "\n".join(p.text or "" for p in content[:-1]), content[-1].text or ""
    text = content_text(message, index).strip()
    for sep in ("\n\n", "\n"):
        cut = text.rfind(sep)
        if cut > 0:
            return text[:cut].strip(), text[cut + len(sep) :].strip()
    return "", text


def split_messages(messages: list[ChatMessage]) -> SplitRequest:
    """Apply the rule above; raises ProxyError (400/501) for requests it cannot serve."""
    for i, m in enumerate(messages):
        if m.role in ("tool", "function"):
            raise not_implemented(
                f"Messages with role '{m.role}' are not supported: this proxy does not support tools.",
                param=f"messages.{i}.role",
            )
    user_idx = [i for i, m in enumerate(messages) if m.role == "user"]
    if not user_idx:
        raise bad_request(
            "The request needs at least one 'user' message (the question, optionally preceded by the "
            "document as earlier user messages).",
            param="messages",
            code="missing_user_message",
        )
    q_i = user_idx[-1]
    doc_idx = user_idx[:-1]
    texts = {i: content_text(messages[i], i) for i in range(len(messages))}
    if not texts[q_i].strip():
        raise bad_request("The last user message (the question) is empty.", param=f"messages.{q_i}.content")

    template: list[dict[str, Any] | None] = []
    split_single = False
    if doc_idx:
        document = "\n\n".join(texts[i] for i in doc_idx if texts[i].strip())
        question = texts[q_i].strip()
    else:
        document, question = _split_single(messages[q_i], q_i)
        split_single = bool(document.strip())
        if not question:
            question, document = document, ""
    placed = False
    question_index = -1
    for i, m in enumerate(messages):
        if i in doc_idx:
            if not placed:
                template.append(None)
                placed = True
            continue
        if i == q_i:
            if split_single:
                template.append(None)
            question_index = len(template)
            template.append({"role": "user", "content": question})
            continue
        entry: dict[str, Any] = {"role": m.role, "content": texts[i]}
        if m.name:
            entry["name"] = m.name
        template.append(entry)
    return SplitRequest(document, question, template, question_index, split_single)


def passthrough_messages(messages: list[ChatMessage]) -> list[dict[str, Any]]:
    """The request's messages as plain dicts with text content (used when there is no document)."""
    out = []
    for i, m in enumerate(messages):
        entry: dict[str, Any] = {"role": m.role, "content": content_text(m, i)}
        if m.name:
            entry["name"] = m.name
        out.append(entry)
    return out


def upstream_messages(split: SplitRequest, fact_pack: str) -> list[dict[str, Any]]:
    """Fill the placeholder with the fact-pack message: the exact messages sent to the synthesis model."""
    pack_message = {"role": "user", "content": FACT_PACK_HEADER + fact_pack}
    return [pack_message if m is None else m for m in split.template]


def hybrid_messages(fact_pack: str, question: str, system_prompt: str | None) -> list[dict[str, Any]]:
    """Upstream messages for /v1/hybrid_chat: optional system prompt, fact pack, then the final prompt."""
    out: list[dict[str, Any]] = []
    if system_prompt:
        out.append({"role": "system", "content": system_prompt})
    out.append({"role": "user", "content": FACT_PACK_HEADER + fact_pack})
    out.append({"role": "user", "content": question})
    return out
