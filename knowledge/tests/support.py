"""Helpers shared by the knowledge, training and chat tests: knowledge ingested through the real
services and the local embedding model. (The uploaded files themselves are built in factories.py.)"""

from __future__ import annotations

import numpy as np

import providers
from knowledge import services
from knowledge.models import Source
from knowledge.tasks import ingest_source

from .factories import upload

# A small shop FAQ as an uploaded CSV file (category and url columns included).
FAQ_CSV = (
    "question,answer,category,url\n"
    "What are your opening hours?,We are open 9:00-18:00 Monday to Saturday.,hours,https://example.com/hours\n"
    'Do you repair e-bikes?,"Yes, our workshop services all e-bike brands.",repairs,\n'
)


def numbered_entries(n: int, prefix: str = "Question") -> list[dict]:
    """`n` FAQ entries in the import format, each question and answer distinct."""
    return [
        {"question": f"{prefix} {i} about bike part {i * 7}?", "answer": f"Answer {i}."}
        for i in range(n)
    ]


def ingest_faqs(bot, entries, name="FAQ") -> Source:
    """FAQ entries (import format) ingested in this process; asserts the source is READY."""
    source = services.faq_entries_import(bot=bot, name=name, entries=entries, enqueue=False)
    source = services.source_ingest(source_id=source.pk)
    assert source.status == Source.Status.READY, source.error
    return source


def ingest_text(bot, name, text) -> Source:
    """A document upload (its kind from `name`) ingested in this process; asserts READY."""
    source = services.source_add(bot=bot, upload=upload(name, text), enqueue=False)
    source = services.source_ingest(source_id=source.pk)
    assert source.status == Source.Status.READY, source.error
    return source


def add_upload(bot, name, data, **kwargs) -> Source:
    """An uploaded file added as a source (queued unless enqueue=False is passed)."""
    return services.source_add(bot=bot, upload=upload(name, data), **kwargs)


def ingest_through_task(source) -> Source:
    """The ingestion task run eagerly in this process, as a worker would run it."""
    ingest_source.apply(args=[source.pk]).get()
    source.refresh_from_db()
    return source


def embed(text) -> np.ndarray:
    """The local provider's embedding of `text`."""
    return np.asarray(providers.get_provider("local").embed([text])[0])
