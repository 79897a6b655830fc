"""Request and response models of the HTTP API (OpenAI's chat-completions shape plus /v1/hybrid_chat).

Known OpenAI fields are typed so a wrong type is a 400 naming the field; unknown fields are accepted and
ignored (OpenAI clients send new fields all the time). Fields the proxy cannot honour (tools, functions,
n>1) are typed too, so the route can answer 501 instead of silently dropping them.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictStr

Role = Literal["system", "developer", "user", "assistant", "tool", "function"]


class ContentPart(BaseModel):
    """One OpenAI content part; only `{"type": "text", "text": ...}` is supported (checked in messages.py)."""

    model_config = ConfigDict(extra="allow")
    type: StrictStr
    text: StrictStr | None = None


class ChatMessage(BaseModel):
    model_config = ConfigDict(extra="allow")
    role: Role
    content: StrictStr | list[ContentPart] | None = None
    name: StrictStr | None = None


class StreamOptions(BaseModel):
    model_config = ConfigDict(extra="allow")
    include_usage: StrictBool = False


class ChatCompletionRequest(BaseModel):
    """`POST /v1/chat/completions`. `dry_run` is a proxy extension (returns the fact pack, no synthesis)."""

    model_config = ConfigDict(extra="allow")

    model: StrictStr
    messages: list[ChatMessage] = Field(min_length=1)
    temperature: float | None = Field(None, ge=0, le=2, strict=True)
    top_p: float | None = Field(None, ge=0, le=1, strict=True)
    max_tokens: int | None = Field(None, ge=1, strict=True)
    max_completion_tokens: int | None = Field(None, ge=1, strict=True)
    stop: StrictStr | list[StrictStr] | None = None
    presence_penalty: float | None = Field(None, ge=-2, le=2, strict=True)
    frequency_penalty: float | None = Field(None, ge=-2, le=2, strict=True)
    seed: int | None = Field(None, strict=True)
    user: StrictStr | None = None
    stream: StrictBool = False
    stream_options: StreamOptions | None = None
    n: int | None = Field(None, ge=1, strict=True)
    tools: list[Any] | None = None
    tool_choice: Any | None = None
    functions: list[Any] | None = None
    function_call: Any | None = None
    dry_run: StrictBool = False

    def sampling_params(self) -> dict[str, Any]:
        """The generation parameters forwarded to the synthesis model (only those the client set)."""
        keys = (
            "temperature",
            "top_p",
            "max_tokens",
            "max_completion_tokens",
            "stop",
            "presence_penalty",
            "frequency_penalty",
            "seed",
            "user",
        )
        return {k: getattr(self, k) for k in keys if getattr(self, k) is not None}


class HybridChatRequest(BaseModel):
    """`POST /v1/hybrid_chat`: the caller names the document and the two prompts explicitly."""

    model_config = ConfigDict(extra="forbid")

    large_document: StrictStr = Field(min_length=1, description="The long text to compress.")
    extraction_task: StrictStr = Field(min_length=1, description="What to look for in the document.")
    final_user_prompt: StrictStr | None = Field(
        None,
        description="The question the synthesis model answers from the fact pack (default: extraction_task).",
    )
    system_prompt: StrictStr | None = None
    dry_run: StrictBool = False
    model: StrictStr | None = None
    temperature: float | None = Field(None, ge=0, le=2, strict=True)
    max_tokens: int | None = Field(None, ge=1, strict=True)
    stop: StrictStr | list[StrictStr] | None = None

    def sampling_params(self) -> dict[str, Any]:
        keys = ("temperature", "max_tokens", "stop")
        return {k: getattr(self, k) for k in keys if getattr(self, k) is not None}


class Usage(BaseModel):
    prompt_tokens: int = 0
    completion_tokens: int = 0
    total_tokens: int = 0


class HybridChatResponse(BaseModel):
    id: str
    object: Literal["hybrid_chat.result"] = "hybrid_chat.result"
    model: str | None
    dry_run: bool
    final_response: str | None
    fact_pack: str
    facts: list[dict[str, Any]]
    stats: dict[str, Any]
    usage: Usage | None = None
