"""The one place that talks to models. Callers use `get_provider()` / `for_bot()`.

Providers are built lazily and cached per process; no model loads at import time.
"""

from __future__ import annotations

from concurrent.futures import Future
from functools import cache

from .base import ChatMessage, Provider, ProviderError, ProviderUnavailable
from .batching import Overloaded

__all__ = [
    "ChatMessage",
    "Provider",
    "ProviderError",
    "ProviderUnavailable",
    "Overloaded",
    "submit_query",
    "get_provider",
    "for_bot",
    "embedding_model_for_bot",
    "embedding_model_arg",
    "embedding_provider",
    "configured_embedding_model",
    "embed_for_bot",
    "PROVIDER_NAMES",
]

PROVIDER_NAMES = ("local", "openai")


@cache
def get_provider(name: str | None = None) -> Provider:
    from django.conf import settings

    name = name or settings.ASKHANDLE_DEFAULT_PROVIDER
    if name == "local":
        from .local import LocalProvider

        return LocalProvider()
    if name == "openai":
        from .openai_compat import OpenAICompatibleProvider

        return OpenAICompatibleProvider()
    raise ProviderError(
        f"Unknown model provider {name!r}; choose one of {', '.join(PROVIDER_NAMES)}."
    )


def for_bot(bot) -> Provider:
    return get_provider(bot.provider)


def _serving(bot) -> tuple[str, str] | None:
    """(provider name, model argument) of the vectors a switching bot still serves, else None."""
    serving = getattr(bot, "serving_embedding", "")
    if not serving:
        return None
    name, _, model = serving.partition(":")
    return name, model


def embedding_provider(bot) -> Provider:
    """The provider whose vectors the bot searches: the bot's own, except while it switches
    embedding models (knowledge.reembedding), when the previous one keeps serving."""
    serving = _serving(bot)
    return get_provider(serving[0]) if serving else for_bot(bot)


def embedding_model_arg(bot) -> str | None:
    """The `model` argument for embedding_provider(bot): the model still serving while the bot
    switches, else the deployed tuned embedding model when the bot has one (training.retrieval),
    else the bot's chosen model (None: the provider default)."""
    serving = _serving(bot)
    if serving:
        return serving[1]
    return getattr(bot, "tuned_embedding_model", "") or bot.embedding_model or None


def configured_embedding_model(bot) -> str:
    """The fully qualified embedding model the bot's settings ask for (with its tuned model, if
    deployed), e.g. 'local:all-MiniLM-L6-v2' or 'local:all-MiniLM-L6-v2~t12'."""
    provider = for_bot(bot)
    model = getattr(bot, "tuned_embedding_model", "") or bot.embedding_model or None
    return f"{provider.name}:{model or provider.default_embedding_model()}"


def embedding_model_for_bot(bot) -> str:
    """The fully qualified embedding model stored beside every vector of the bot and searched:
    configured_embedding_model(bot), or while the bot switches models, the one still serving."""
    return getattr(bot, "serving_embedding", "") or configured_embedding_model(bot)


def embed_for_bot(bot, texts) -> list[list[float]]:
    """Unit vectors for `texts` from the bot's active embedding model."""
    return embedding_provider(bot).embed(list(texts), model=embedding_model_arg(bot))


def submit_query(bot, text: str) -> Future:
    """One question for the bot's active embedding model, queued in this process's micro-batch
    (providers.batching): a Future of its unit vector, embedded together with the other
    questions waiting. Raises Overloaded at once when too many are waiting."""
    from .batching import batcher

    return batcher().submit(embedding_provider(bot).name, embedding_model_arg(bot), text)


def warm_up_in_background() -> None:
    """Load the default provider's embedding model in a daemon thread.

    The web process calls this once it starts serving, so the first customer question does not
    pay the 10-15 s model load. Nothing loads at import time.
    """
    import logging
    import threading

    def run():
        try:
            provider = get_provider()
            provider.embed(["warm up"])
        except Exception:  # a provider that is down must not stop the web server
            logging.getLogger(__name__).warning("Model warm-up failed", exc_info=True)

    threading.Thread(target=run, name="askhandle-warm-up", daemon=True).start()
