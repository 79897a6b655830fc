"""Typed proxy settings read from environment variables (one place; documented in proxy/README.md).

Every field is read from the environment variable of the same name in upper case (no prefix), because
operators already know `SYNTHESIS_MODEL` / `OPENAI_API_BASE` from LiteLLM. Values are validated at start-up
so a typo fails fast with a clear message instead of on the first request.
"""

from __future__ import annotations

from functools import cached_property
from typing import Literal

from pydantic import AliasChoices, Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

PUBLIC_MODEL_ALIAS = "liquid-memory"


class ProxySettings(BaseSettings):
    """All operator knobs of the proxy. Secrets are `SecretStr` so they never appear in reprs or logs."""

    model_config = SettingsConfigDict(env_prefix="", case_sensitive=False, extra="ignore")

    # --- serving ---------------------------------------------------------------------------------------
    proxy_host: str = Field("127.0.0.1", description="Interface to listen on (CLI --host overrides).")
    proxy_port: int = Field(8000, ge=0, le=65535, description="TCP port (CLI --port overrides).")
    proxy_api_keys: SecretStr | None = Field(
        None,
        description="Comma-separated API keys; when set, every /v1 request needs `Authorization: Bearer`.",
    )
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field("INFO", description="Log level.")
    max_request_bytes: int = Field(64 * 1024 * 1024, ge=1024, description="Largest accepted request body.")

    # --- synthesis (LiteLLM) ---------------------------------------------------------------------------
    synthesis_model: str = Field(
        "openai/gpt-4o-mini", description="LiteLLM model string used for synthesis (any provider)."
    )
    synthesis_api_base: str | None = Field(
        None,
        validation_alias=AliasChoices("SYNTHESIS_API_BASE", "OPENAI_API_BASE"),
        description="Base URL of the synthesis server (e.g. a local OpenAI-compatible server).",
    )
    synthesis_api_key: SecretStr | None = Field(
        None,
        validation_alias=AliasChoices("SYNTHESIS_API_KEY", "OPENAI_API_KEY"),
        description="API key for the synthesis provider (else LiteLLM's provider env vars are used).",
    )
    synthesis_timeout_s: float = Field(60.0, gt=0, description="Per-attempt synthesis timeout (seconds).")
    synthesis_max_retries: int = Field(2, ge=0, le=10, description="Retries on 429/5xx/timeouts/connection.")
    synthesis_retry_backoff_s: float = Field(0.5, ge=0, description="First retry delay; doubles per retry.")
    forward_client_model: bool = Field(
        True,
        description="Send the client's `model` upstream (with SYNTHESIS_MODEL's provider prefix); "
        "false: always use SYNTHESIS_MODEL.",
    )

    # --- extraction ------------------------------------------------------------------------------------
    extractor: str = Field(
        "builtin", description="Extractor backend: builtin | bm25 | smollm2 | vllm-http | vllm-engine."
    )
    vllm_base_url: str | None = Field(None, description="vLLM OpenAI-compatible base URL (extractor=vllm).")
    vllm_model: str | None = Field(None, description="Model name served by vLLM (extractor=vllm).")
    vllm_api_key: SecretStr | None = Field(None, description="API key for the vLLM server, if it needs one.")
    extractor_timeout_s: float = Field(60.0, gt=0, description="Per-chunk extractor call timeout (seconds).")
    smollm2_linearized_dir: str | None = Field(
        None,
        description="extractor=smollm2: a DIR written by `liquid-memory linearize` — run the extractor on that "
        "linearized (constant decode state) SmolLM2 instead of the original.",
    )
    chunk_tokens: int = Field(512, ge=32, le=32768, description="Tokens per chunk.")
    chunk_overlap_tokens: int = Field(64, ge=0, description="Token overlap between neighbouring chunks.")
    target_ratio: float | None = Field(20.0, gt=1, description="Target compression (input/forwarded tokens).")
    max_fact_tokens: int = Field(4096, ge=16, description="Upper bound on the fact pack size (tokens).")
    extraction_concurrency: int = Field(8, ge=1, le=256, description="Chunks extracted concurrently.")
    allow_raw_document_fallback: bool = Field(
        False,
        description="If extraction fails entirely, forward the raw document upstream (privacy risk!). "
        "Default: return an error and forward nothing.",
    )

    # --- per-request limits ----------------------------------------------------------------------------
    max_document_chars: int = Field(4_000_000, ge=1, description="Largest document (characters) → else 400.")
    max_document_tokens: int = Field(1_000_000, ge=1, description="Largest document (tokens) → else 400.")
    max_chunks: int = Field(4096, ge=1, description="Most chunks per request → else 400.")
    compress_min_tokens: int = Field(
        0,
        ge=0,
        description="Chat documents shorter than this are forwarded verbatim. "
        "0 (default): always compress, so no document text goes upstream.",
    )
    passthrough_max_tokens: int = Field(
        2048, ge=0, description="A request with no document part is forwarded as-is only up to this size."
    )

    @field_validator("synthesis_model")
    @classmethod
    def _model_not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("SYNTHESIS_MODEL must be a LiteLLM model string such as 'openai/gpt-4o-mini'")
        return value.strip()

    @field_validator("chunk_overlap_tokens")
    @classmethod
    def _overlap_smaller_than_chunk(cls, value: int, info) -> int:  # type: ignore[no-untyped-def]
        chunk = info.data.get("chunk_tokens", 512)
        if value * 2 >= chunk:
            raise ValueError(f"CHUNK_OVERLAP_TOKENS ({value}) must be < half of CHUNK_TOKENS ({chunk})")
        return value

    @cached_property
    def api_keys(self) -> tuple[str, ...]:
        """The configured client API keys (empty: auth disabled)."""
        if self.proxy_api_keys is None:
            return ()
        return tuple(k.strip() for k in self.proxy_api_keys.get_secret_value().split(",") if k.strip())

    @property
    def synthesis_provider(self) -> str | None:
        """Provider prefix of SYNTHESIS_MODEL ('openai' for 'openai/gpt-4o'), None if it has none."""
        head, sep, _ = self.synthesis_model.partition("/")
        return head if sep else None


def settings_table() -> list[tuple[str, str, str]]:
    """(ENV_VAR, default, description) rows, used to generate the README table and `--help-env`."""
    rows = []
    for name, field in ProxySettings.model_fields.items():
        alias = field.validation_alias
        env = " / ".join(alias.choices) if isinstance(alias, AliasChoices) else name.upper()
        default = "—" if field.default is None else str(field.default)
        rows.append((env, default, field.description or ""))
    return rows
