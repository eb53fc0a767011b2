"""Which embedding model serves a bot's knowledge, and how its texts are embedded.

A bot's vectors come from its provider's model: the one the owner chose, else the local model
for the bot's language (bots.languages), else the provider's default; a deployed tuned model
(training.retrieval) replaces it, and while the bot switches models (knowledge.reembedding) the
previous one keeps serving until every chunk has the new model's vector.
"""

from __future__ import annotations

from concurrent.futures import Future

import providers
from bots import languages

from .models import EmbeddingState

# Models that embed an FAQ phrasing together with its answer, as a passage: multilingual-e5 was
# trained to match a query to a passage, and a short question alone carries too little of the
# entry (a Dutch FAQ: 21 of 25 customer questions found their entry with question + answer).
PASSAGE_MODELS = (f"local:{languages.MULTILINGUAL_MODEL}",)


def state(bot) -> EmbeddingState:
    """The bot's EmbeddingState: its deployed tuned model and the model still serving."""
    return EmbeddingState.of(bot)


def state_update(bot, **fields) -> None:
    """Write the bot's EmbeddingState fields (workers: a tuned model deployed or withdrawn, a
    switch begun or done), on the row and on the bot instance in hand."""
    current = state(bot)
    EmbeddingState.objects.filter(pk=current.pk).update(**fields)
    for name, value in fields.items():
        setattr(current, name, value)


def tuned_model(bot) -> str:
    """The tuned embedding model training deployed to the bot ('' for none)."""
    return state(bot).tuned_embedding_model


def serving_embedding(bot) -> str:
    """The fully qualified model a switching bot's vectors still come from ('' when none)."""
    return state(bot).serving_embedding


def _serving(bot) -> tuple[str, str] | None:
    """(provider name, model argument) of the vectors a switching bot still serves, else None."""
    serving = serving_embedding(bot)
    if not serving:
        return None
    name, _, model = serving.partition(":")
    return name, model


def chosen_embedding_model(bot) -> str | None:
    """The model the bot's settings ask for before tuning (None: the provider's default)."""
    if bot.embedding_model:
        return bot.embedding_model
    if bot.provider == "local":
        return languages.local_embedding_model(bot.language)
    return None


def embedding_provider(bot) -> providers.Provider:
    """The provider whose vectors the bot searches: the bot's own, except while it switches
    embedding models, when the previous one keeps serving."""
    serving = _serving(bot)
    return providers.get_provider(serving[0]) if serving else providers.for_bot(bot)


def embedding_model_arg(bot) -> str | None:
    """The `model` argument for embedding_provider(bot): the model still serving while the bot
    switches, else the deployed tuned embedding model when the bot has one, else the bot's
    chosen model (None: the provider default)."""
    serving = _serving(bot)
    if serving:
        return serving[1]
    return tuned_model(bot) or chosen_embedding_model(bot)


def configured_embedding_model(bot) -> str:
    """The fully qualified embedding model the bot's settings ask for (with its tuned model, if
    deployed), e.g. 'local:all-MiniLM-L6-v2' or 'local:all-MiniLM-L6-v2~t12'."""
    provider = providers.for_bot(bot)
    model = tuned_model(bot) or chosen_embedding_model(bot)
    return f"{provider.name}:{model or provider.default_embedding_model()}"


def embedding_model_for_bot(bot) -> str:
    """The fully qualified embedding model stored beside every vector of the bot and searched:
    configured_embedding_model(bot), or while the bot switches models, the one still serving."""
    return serving_embedding(bot) or configured_embedding_model(bot)


def embed_for_bot(bot, texts, *, kind: str = "query") -> list[list[float]]:
    """Unit vectors for `texts` from the bot's active embedding model."""
    return embedding_provider(bot).embed(list(texts), model=embedding_model_arg(bot), kind=kind)


def submit_query(bot, text: str) -> Future:
    """One question for the bot's active embedding model, queued in this process's micro-batch:
    a Future of its unit vector. Raises providers.Overloaded when too many are waiting."""
    return providers.submit(embedding_provider(bot).name, embedding_model_arg(bot), text)


def embeds_answers(model: str) -> bool:
    """Whether FAQ chunks of the fully qualified `model` embed phrasing and answer together."""
    return model in PASSAGE_MODELS


def chunk_embed_text(chunk: dict, model: str) -> str:
    """The text a chunk is embedded from: an FAQ phrasing alone (question-to-question matching
    retrieves FAQs best with MiniLM), or with its entry's question and answer for a passage model;
    a document chunk "title\\ntext". `chunk` has faq_id, title and text."""
    if chunk["faq_id"] and not embeds_answers(model):
        return chunk["title"]
    return f"{chunk['title']}\n{chunk['text']}"


# A chunk's full-text vector (title weight A, text weight B) in the configuration %(ts)s: the one
# expression both the ingestion's INSERT and a language change's rebuild compute.
SEARCH_VECTOR_SQL = (
    "setweight(to_tsvector(%(ts)s::regconfig, title), 'A') || "
    "setweight(to_tsvector(%(ts)s::regconfig, text), 'B')"
)


def text_search_config(bot) -> str:
    """The PostgreSQL text-search configuration of the bot's language."""
    return languages.text_search_config(getattr(bot, "language", ""))
