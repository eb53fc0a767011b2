"""Reads over knowledge shared by several callers. `search()` is the retrieval entry point.

NOTE: first version (plain vector search); hybrid vector + full-text fusion comes next.
"""

from __future__ import annotations

from dataclasses import dataclass

from pgvector.django import CosineDistance

import providers

from .models import Chunk, Source


@dataclass
class Hit:
    chunk_id: int
    faq_id: int | None
    title: str
    text: str
    answer: str  # the FAQ answer for FAQ chunks, else the chunk text
    url: str
    score: float  # cosine similarity in [−1, 1]


def search(*, bot, query: str, limit: int = 5) -> list[Hit]:
    model = providers.embedding_model_for_bot(bot)
    vector = providers.for_bot(bot).embed([query], model=bot.embedding_model or None)[0]
    qs = (
        Chunk.objects.filter(bot=bot, embedding_model=model, source__status=Source.Status.READY)
        .select_related("faq", "source")
        .annotate(distance=CosineDistance("embedding", vector))
        .order_by("distance")[: limit * 4]
    )
    hits, seen = [], set()
    for chunk in qs:
        key = ("faq", chunk.faq_id) if chunk.faq_id else ("chunk", chunk.pk)
        if key in seen:
            continue
        seen.add(key)
        hits.append(
            Hit(
                chunk_id=chunk.pk,
                faq_id=chunk.faq_id,
                title=chunk.title or chunk.source.name,
                text=chunk.text,
                answer=chunk.faq.answer if chunk.faq_id else chunk.text,
                url=(chunk.faq.url if chunk.faq_id else "") or chunk.source.url,
                score=1.0 - float(chunk.distance),
            )
        )
        if len(hits) == limit:
            break
    return hits
