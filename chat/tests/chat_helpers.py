"""Shared by the public chat, widget, rate-limit and API tests: FAQ knowledge embedded with the
real local model. (The uvicorn server fixture, `asgi_server`, is in the root conftest.)"""

from __future__ import annotations

from pathlib import Path

from django.db.models import F

from knowledge import serving

ROOT = Path(__file__).resolve().parents[2]


def add_faq(bot, question: str, answer: str, url: str = ""):
    """One READY FAQ entry whose single chunk is the question's real embedding, so asking the
    same question is a direct FAQ answer (similarity 1.0)."""
    import providers
    from knowledge.models import Chunk, FaqEntry, Source

    source, _ = Source.objects.get_or_create(
        bot=bot, kind=Source.Kind.MANUAL, name="FAQ", defaults={"status": Source.Status.READY}
    )
    entry = FaqEntry.objects.create(
        bot=bot, source=source, question=question, answer=answer, url=url
    )
    vector = providers.for_bot(bot).embed([question])[0]
    Chunk.objects.create(
        bot=bot,
        source=source,
        faq=entry,
        title=question,
        text=question,
        embedding=vector,
        embedding_model=serving.embedding_model_for_bot(bot),
    )
    # Keep the source as ingestion leaves it: search reads sources that have chunks.
    Source.objects.filter(pk=source.pk).update(chunk_count=F("chunk_count") + 1)
    return entry


def add_document_chunk(
    bot, text: str, title: str = "Shipping policy", url: str = "", embed_as: str | None = None
):
    """A READY document chunk (not an FAQ): a close match is quoted, or written from by a bot
    that may generate. `embed_as`: the text whose embedding the chunk gets (default `text`), so
    a question embedded by the stub server's hash vectors can find a passage that answers it."""
    import providers
    from knowledge.models import Chunk, Source

    source = Source.objects.create(
        bot=bot,
        kind=Source.Kind.TEXT,
        name=title,
        url=url,
        status=Source.Status.READY,
        chunk_count=1,
    )
    vector = providers.for_bot(bot).embed([embed_as or text], model=bot.embedding_model or None)[0]
    return Chunk.objects.create(
        bot=bot,
        source=source,
        title=title,
        text=text,
        embedding=vector,
        embedding_model=serving.embedding_model_for_bot(bot),
    )
