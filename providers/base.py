"""The small interface every model provider implements: embeddings and chat completion."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Protocol, TypedDict


class ChatMessage(TypedDict):
    role: str  # "system" | "user" | "assistant"
    content: str


class ProviderError(Exception):
    """A provider call failed for a reason retrying will not fix (bad request, bad key)."""


class ProviderUnavailable(ProviderError):
    """A transient failure (connection, timeout, rate limit, 5xx): safe to retry later."""


class Provider(Protocol):
    name: str

    def default_embedding_model(self) -> str: ...

    def default_chat_model(self) -> str: ...

    def embed(
        self, texts: Sequence[str], *, model: str | None = None, kind: str = "query"
    ) -> list[list[float]]: ...

    def chat(
        self,
        messages: Sequence[ChatMessage],
        *,
        model: str | None = None,
        max_tokens: int = 256,
        temperature: float = 0.0,
    ) -> str: ...

    def chat_stream(
        self,
        messages: Sequence[ChatMessage],
        *,
        model: str | None = None,
        max_tokens: int = 256,
        temperature: float = 0.0,
    ) -> Iterator[str]: ...
