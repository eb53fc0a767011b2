"""The one place that talks to models. Callers use `get_provider()` / `for_bot()`; which model
serves a bot's knowledge is knowledge.serving's business.

Providers are built lazily and cached per process; no model loads at import time. The training
app tunes the local models through the names below (training.local_training): the base models
it starts from, the torch runtime as providers configure it, and the names and files its results
are served under. Training itself is not done here.
"""

from __future__ import annotations

import logging
import threading
from concurrent.futures import Future
from functools import cache

from django.conf import settings

from .base import ChatMessage, Provider, ProviderError, ProviderUnavailable
from .batching import Overloaded, batcher
from .local import (
    ADAPTER_FILES,
    TUNED_SEPARATOR,
    LocalProvider,
    prepare_torch,
    tuned_chat_model_name,
    tuned_weights_name,
)
from .local import chat_tokenizer as local_chat_tokenizer
from .local import embedder as local_embedder
from .local import ensure_chat_model_dir as local_chat_model_dir

__all__ = [
    "submit",
    "ChatMessage",
    "Provider",
    "ProviderError",
    "ProviderUnavailable",
    "Overloaded",
    "get_provider",
    "for_bot",
    "PROVIDER_NAMES",
    # The local models, for training.local_training and the files of what it trained.
    "ADAPTER_FILES",
    "TUNED_SEPARATOR",
    "local_chat_model_dir",
    "local_chat_tokenizer",
    "local_embedder",
    "prepare_torch",
    "tuned_chat_model_name",
    "tuned_weights_name",
]

PROVIDER_NAMES = ("local", "openai")


@cache
def get_provider(name: str | None = None) -> Provider:
    name = name or settings.ASKHANDLE_DEFAULT_PROVIDER
    if name == "local":
        return LocalProvider()
    if name == "openai":
        from .openai_compat import OpenAICompatibleProvider  # the openai client takes ~2 s

        return OpenAICompatibleProvider()
    raise ProviderError(
        f"Unknown model provider {name!r}; choose one of {', '.join(PROVIDER_NAMES)}."
    )


def for_bot(bot) -> Provider:
    return get_provider(bot.provider)


def submit(provider: str, model: str | None, text: str) -> Future:
    """One question for `provider`'s embedding `model`, queued in this process's micro-batch
    (providers.batching): a Future of its unit vector, embedded together with the other
    questions waiting. Raises Overloaded at once when too many are waiting."""
    return batcher().submit(provider, model, text)


def warm_up_in_background() -> None:
    """Load the default provider's embedding model in a daemon thread.

    The web process calls this once it starts serving, so the first customer question does not
    pay the 10-15 s model load. Nothing loads at import time.
    """

    def run():
        try:
            provider = get_provider()
            provider.embed(["warm up"])
        except Exception:  # a provider that is down must not stop the web server
            logging.getLogger(__name__).warning("Model warm-up failed", exc_info=True)

    threading.Thread(target=run, name="askhandle-warm-up", daemon=True).start()
