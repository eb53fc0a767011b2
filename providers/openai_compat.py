"""OpenAI and any OpenAI-compatible server (Ollama, vLLM, llama.cpp): the only module that
uses the `openai` client for inference. Configure with OPENAI_BASE_URL, OPENAI_API_KEY,
OPENAI_CHAT_MODEL and OPENAI_EMBEDDING_MODEL.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from functools import cached_property

import openai
from django.conf import settings

from .base import ChatMessage, ProviderError, ProviderUnavailable

TRANSIENT = (
    openai.APIConnectionError,
    openai.APITimeoutError,
    openai.RateLimitError,
    openai.InternalServerError,
)


def _translate(exc: Exception) -> ProviderError:
    if isinstance(exc, TRANSIENT):
        return ProviderUnavailable(f"The model service is unavailable: {exc}")
    if isinstance(exc, openai.AuthenticationError):
        return ProviderError("The model service rejected the API key (OPENAI_API_KEY).")
    if isinstance(exc, openai.APIStatusError):
        return ProviderError(
            f"The model service refused the request ({exc.status_code}): {exc.message}"
        )
    return ProviderError(str(exc))


class OpenAICompatibleProvider:
    name = "openai"

    def __init__(self, *, base_url=None, api_key=None, chat_model=None, embedding_model=None):
        self.base_url = base_url or settings.OPENAI_BASE_URL
        # Local servers (Ollama, vLLM) accept any key; the client insists on one.
        self.api_key = api_key or settings.OPENAI_API_KEY or "not-needed"
        self._chat_model = chat_model or settings.OPENAI_CHAT_MODEL
        self._embedding_model = embedding_model or settings.OPENAI_EMBEDDING_MODEL

    @cached_property
    def client(self) -> openai.OpenAI:
        return openai.OpenAI(
            base_url=self.base_url,
            api_key=self.api_key,
            timeout=settings.OPENAI_TIMEOUT,
            max_retries=2,
        )

    def default_embedding_model(self) -> str:
        return self._embedding_model

    def default_chat_model(self) -> str:
        return self._chat_model

    @staticmethod
    def _strip(model: str | None) -> str | None:
        return model.removeprefix("openai:") if model else model

    def embed(
        self, texts: Sequence[str], *, model: str | None = None, kind: str = "query"
    ) -> list[list[float]]:
        # OpenAI's embedding models embed questions and passages alike: `kind` is not sent.
        if not texts:
            return []
        try:
            response = self.client.embeddings.create(
                model=self._strip(model) or self._embedding_model, input=list(texts)
            )
        except openai.OpenAIError as exc:
            raise _translate(exc) from exc
        return [item.embedding for item in sorted(response.data, key=lambda d: d.index)]

    def chat(
        self, messages: Sequence[ChatMessage], *, model=None, max_tokens=256, temperature=0.0
    ) -> str:
        try:
            response = self.client.chat.completions.create(
                model=self._strip(model) or self._chat_model,
                messages=list(messages),
                max_tokens=max_tokens,
                temperature=temperature,
            )
        except openai.OpenAIError as exc:
            raise _translate(exc) from exc
        return response.choices[0].message.content or ""

    def chat_stream(
        self, messages: Sequence[ChatMessage], *, model=None, max_tokens=256, temperature=0.0
    ) -> Iterator[str]:
        try:
            stream = self.client.chat.completions.create(
                model=self._strip(model) or self._chat_model,
                messages=list(messages),
                max_tokens=max_tokens,
                temperature=temperature,
                stream=True,
            )
            for event in stream:
                if event.choices and event.choices[0].delta.content:
                    yield event.choices[0].delta.content
        except openai.OpenAIError as exc:
            raise _translate(exc) from exc

    # --- Fine-tuning (files + fine_tuning.jobs): training.chat_tuning submits, beat polls ------

    @property
    def _ft_client(self) -> openai.OpenAI:
        # No client-side retries: a beat poll comes again in seconds, and a submission retries
        # through Celery's back-off, so no worker sleeps on a 429.
        return self.client.with_options(max_retries=0)

    def fine_tune_submit(
        self, *, jsonl: bytes, filename: str, model: str, hyperparameters: dict, suffix: str
    ) -> dict:
        """Upload the training file and create the job; returns {"file_id", "job"}."""
        try:
            uploaded = self._ft_client.files.create(file=(filename, jsonl), purpose="fine-tune")
            job = self._ft_client.fine_tuning.jobs.create(
                training_file=uploaded.id,
                model=model,
                **({"suffix": suffix[:18]} if suffix else {}),
                method={"type": "supervised", "supervised": {"hyperparameters": hyperparameters}},
            )
        except openai.OpenAIError as exc:
            raise _translate_fine_tuning(exc) from exc
        return {"file_id": uploaded.id, "job": job.model_dump()}

    def fine_tune_status(self, job_id: str, *, after: str | None = None) -> dict:
        """The job and its events newer than `after` (oldest first)."""
        try:
            job = self._ft_client.fine_tuning.jobs.retrieve(job_id)
            kwargs = {"limit": 100, **({"after": after} if after else {})}
            events = self._ft_client.fine_tuning.jobs.list_events(job_id, **kwargs)
        except openai.OpenAIError as exc:
            raise _translate_fine_tuning(exc) from exc
        return {
            "job": job.model_dump(),
            "events": sorted(
                (e.model_dump() for e in events.data), key=lambda e: (e["created_at"], e["id"])
            ),
        }

    def fine_tune_cancel(self, job_id: str) -> dict:
        try:
            return self._ft_client.fine_tuning.jobs.cancel(job_id).model_dump()
        except openai.OpenAIError as exc:
            raise _translate_fine_tuning(exc) from exc


class FineTuningRefused(ProviderError):
    """The provider does not let this account fine-tune (no access, or no new jobs)."""


REFUSED_HINT = (
    "OpenAI closed self-serve fine-tuning to new accounts in 2026 and plans to stop new jobs in "
    "January 2027. Use the local backend (no API key), or an OpenAI-compatible fine-tuning "
    "service (OPENAI_BASE_URL)."
)


def _translate_fine_tuning(exc: Exception) -> ProviderError:
    if isinstance(exc, openai.PermissionDeniedError) or (
        isinstance(exc, openai.APIStatusError)
        and exc.status_code in (400, 404)
        and "fine-tun" in str(exc.message).lower()
        and any(w in str(exc.message).lower() for w in ("not available", "access", "not allowed"))
    ):
        return FineTuningRefused(
            f"The provider refused fine-tuning for this account: {exc.message} {REFUSED_HINT}"
        )
    return _translate(exc)
