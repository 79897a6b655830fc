"""The documented rule for which message is the document and which the question (proxy/messages.py)."""

from __future__ import annotations

import pytest
from liquid_memory_proxy.errors import ProxyError
from liquid_memory_proxy.messages import FACT_PACK_HEADER, split_messages, upstream_messages
from liquid_memory_proxy.schemas import ChatMessage


def msgs(*pairs):
    return [ChatMessage(role=r, content=c) for r, c in pairs]


def test_earlier_user_messages_are_the_document_last_is_the_question():
    split = split_messages(msgs(("user", "DOC PART ONE"), ("user", "DOC PART TWO"), ("user", "the question?")))
    assert split.document == "DOC PART ONE\n\nDOC PART TWO"
    assert split.question == "the question?"
    up = upstream_messages(split, "PACK")
    assert up == [
        {"role": "user", "content": FACT_PACK_HEADER + "PACK"},
        {"role": "user", "content": "the question?"},
    ]


def test_system_and_assistant_turns_are_kept_verbatim_in_place():
    split = split_messages(
        msgs(("system", "be brief"), ("user", "THE DOCUMENT"), ("assistant", "earlier answer"), ("user", "q?"))
    )
    assert split.document == "THE DOCUMENT"
    up = upstream_messages(split, "PACK")
    assert [m["role"] for m in up] == ["system", "user", "assistant", "user"]
    assert up[0]["content"] == "be brief" and up[2]["content"] == "earlier answer"
    assert "THE DOCUMENT" not in str(up) and up[1]["content"].endswith("PACK")


def test_single_string_message_splits_at_last_paragraph():
    split = split_messages(msgs(("user", "para one.\n\npara two.\n\nWhat is it?")))
    assert split.document == "para one.\n\npara two."
    assert split.question == "What is it?"
    up = upstream_messages(split, "PACK")
    assert up[-1] == {"role": "user", "content": "What is it?"}
    assert "para one" not in str(up)


def test_single_message_falls_back_to_last_line_break():
    split = split_messages(msgs(("user", "line one.\nline two.\nWhat is it?")))
    assert (split.document, split.question) == ("line one.\nline two.", "What is it?")


def test_single_message_without_break_has_no_document():
    split = split_messages(msgs(("user", "Just a short question?")))
    assert not split.has_document and split.question == "Just a short question?"


def test_text_parts_last_part_is_question():
    parts = [
        {"type": "text", "text": "DOC A"},
        {"type": "text", "text": "DOC B"},
        {"type": "text", "text": "q?"},
    ]
    m = ChatMessage(role="user", content=parts)
    split = split_messages([m])
    assert split.document == "DOC A\nDOC B" and split.question == "q?"


def test_text_parts_in_separate_messages_are_joined():
    m1 = ChatMessage(role="user", content=[{"type": "text", "text": "A"}, {"type": "text", "text": "B"}])
    m2 = ChatMessage(role="user", content=[{"type": "text", "text": "q?"}])
    split = split_messages([m1, m2])
    assert split.document == "A\nB" and split.question == "q?"


def test_image_part_is_a_400_naming_the_part():
    m1 = ChatMessage(role="user", content=[{"type": "image_url", "image_url": {"url": "x"}}])
    with pytest.raises(ProxyError) as err:
        split_messages([m1, ChatMessage(role="user", content="q?")])
    assert err.value.status == 400 and err.value.param == "messages.0.content.0"


def test_tool_messages_are_501():
    with pytest.raises(ProxyError) as err:
        split_messages(msgs(("user", "q?"), ("tool", "result")))
    assert err.value.status == 501 and err.value.headers["x-should-retry"] == "false"


def test_no_user_message_is_400():
    with pytest.raises(ProxyError) as err:
        split_messages(msgs(("system", "hello")))
    assert err.value.status == 400 and err.value.code == "missing_user_message"


def test_empty_question_is_400():
    with pytest.raises(ProxyError) as err:
        split_messages(msgs(("user", "doc"), ("user", "   ")))
    assert err.value.status == 400 and err.value.param == "messages.1.content"
