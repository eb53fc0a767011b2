"""Two writes to one bot at the same moment leave one consistent state (issue 14): uploads,
ingestions, FAQ edits and tuning launches, each from two threads with their own database
connections, released together by a barrier, against the real PostgreSQL (committed rows)."""

from __future__ import annotations

import threading

import pytest
from django.core.exceptions import ValidationError
from django.core.files.storage import default_storage
from django.db import connection

from knowledge import services
from knowledge.models import Chunk, FaqEntry, Source
from knowledge.tests.factories import SHOP_FAQ, upload

pytestmark = pytest.mark.django_db(transaction=True)


def at_once(*calls) -> list:
    """Run each call in its own thread (own DB connection), started together; returns each
    call's result or the exception it raised."""
    barrier = threading.Barrier(len(calls))
    results: list = [None] * len(calls)

    def run(i, call):
        try:
            barrier.wait(timeout=30)
            results[i] = call()
        except Exception as exc:  # noqa: BLE001 - the test inspects it
            results[i] = exc
        finally:
            connection.close()

    threads = [threading.Thread(target=run, args=(i, c)) for i, c in enumerate(calls)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)
    return results


def _entries(n: int, prefix: str) -> list[dict]:
    return [
        {"question": f"{prefix} question {i}?", "answer": f"{prefix} answer {i}."} for i in range(n)
    ]


@pytest.fixture
def media(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path / "media"
    return settings.MEDIA_ROOT


def test_two_uploads_at_once_for_the_last_free_source_slot_save_one(bot, media, settings):
    settings.KNOWLEDGE_MAX_SOURCES_PER_BOT = 2
    services.source_add(bot=bot, upload=upload("first.md", "# A\n\nText."), enqueue=False)

    results = at_once(
        *[
            (
                lambda n=n: services.source_add(
                    bot=bot, upload=upload(n, "# B\n\nMore."), enqueue=False
                )
            )
            for n in ("one.md", "two.md")
        ]
    )

    assert sorted(type(r).__name__ for r in results) == ["Source", "ValidationError"]
    assert Source.objects.filter(bot=bot).count() == 2
    assert len([p for p in media.rglob("*") if p.is_file()]) == 2  # the refused file was removed


def test_two_sources_ingested_at_once_never_pass_the_chunk_limit_together(bot, media, settings):
    settings.KNOWLEDGE_MAX_CHUNKS_PER_BOT = 30
    a, b = (
        services.faq_entries_import(bot=bot, name=n, entries=_entries(20, n), enqueue=False)
        for n in ("alpha", "beta")
    )

    results = at_once(
        lambda: services.source_ingest(source_id=a.pk),
        lambda: services.source_ingest(source_id=b.pk),
    )

    statuses = sorted(r.status for r in results)
    assert statuses == [Source.Status.FAILED, Source.Status.READY], results
    failed = next(r for r in results if r.status == Source.Status.FAILED)
    assert "limit is 30 chunks per bot" in failed.error
    assert Chunk.objects.filter(bot=bot).count() == 20


def test_one_source_delivered_twice_at_once_is_ingested_once(bot, media):
    source = services.faq_entries_import(
        bot=bot, name="faq", entries=_entries(30, "x"), enqueue=False
    )

    at_once(*[lambda: services.source_ingest(source_id=source.pk)] * 2)

    source.refresh_from_db()
    assert source.status == Source.Status.READY and source.attempts == 1
    assert Chunk.objects.filter(source=source).count() == 30
    assert FaqEntry.objects.filter(source=source).count() == 30


def test_two_edits_at_once_leave_one_entry_and_chunks_that_match_it(bot, media):
    entry = services.faq_entry_create(bot=bot, question="Do you ship abroad?", answer="No.")
    other = services.faq_entry_create(bot=bot, question="Can I return a bike?", answer="No.")

    def edit(target, answer):
        return lambda: services.faq_entry_update(
            entry=FaqEntry.objects.get(pk=target.pk), question=target.question, answer=answer
        )

    results = at_once(
        edit(entry, "Yes, to 30 countries."),
        edit(entry, "Yes, within Europe."),
        edit(other, "Within 30 days."),
        lambda: services.faq_entry_create(bot=bot, question="Do you repair bikes?", answer="Yes."),
    )
    assert not [r for r in results if isinstance(r, Exception)], results
    source = services.manual_source(bot=bot)
    assert services.source_ingest(source_id=source.pk).status == Source.Status.READY

    entry.refresh_from_db()
    assert entry.answer in ("Yes, to 30 countries.", "Yes, within Europe.")
    answers = {c.faq.question: c.text for c in Chunk.objects.filter(bot=bot).select_related("faq")}
    assert answers == {
        "Do you ship abroad?": f"Q: Do you ship abroad?\nA: {entry.answer}",
        "Can I return a bike?": "Q: Can I return a bike?\nA: Within 30 days.",
        "Do you repair bikes?": "Q: Do you repair bikes?\nA: Yes.",
    }
    assert Chunk.objects.filter(bot=bot).count() == FaqEntry.objects.filter(bot=bot).count() == 3


def test_two_tuning_launches_at_once_start_one_run(bot, media, settings):
    from training import chat_tuning
    from training.models import ChatTuning

    settings.CHAT_TUNING_MIN_EXAMPLES = 4
    source = services.faq_entries_import(bot=bot, name="shop", entries=SHOP_FAQ, enqueue=False)
    assert services.source_ingest(source_id=source.pk).status == Source.Status.READY

    results = at_once(*[lambda: chat_tuning.chat_tuning_launch(bot=bot)] * 2)

    assert sorted(type(r).__name__ for r in results) == ["ChatTuning", "ValidationError"], results
    refused = next(r for r in results if isinstance(r, ValidationError))
    assert "wait for it to finish or cancel it" in " ".join(refused.messages)
    run = ChatTuning.objects.get(bot=bot)
    sets = [p for p in media.rglob("*.jsonl")]
    assert [str(p.relative_to(media)) for p in sets] == [run.training_file]  # loser's set removed
    default_storage.delete(run.training_file)
