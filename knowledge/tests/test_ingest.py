"""Ingestion through the real services, PostgreSQL and the local embedding model."""

import numpy as np
import pytest
from django.core.exceptions import ValidationError
from django.db import connection

import providers
from knowledge import services
from knowledge.models import Chunk, FaqEntry, Source
from knowledge.tasks import ingest_source

from .factories import docx_bytes, pdf_bytes
from .support import FAQ_CSV
from .support import add_upload as add
from .support import ingest_through_task as ingest

pytestmark = pytest.mark.django_db(transaction=True)


def test_csv_faq_becomes_one_chunk_per_phrasing_embedded_from_the_phrasing(bot):
    source = ingest(add(bot, "faq.csv", FAQ_CSV))
    assert source.status == Source.Status.READY, source.error
    assert source.kind == Source.Kind.CSV
    assert source.chunk_count == 2 and source.embedding_model == "local:all-MiniLM-L6-v2"
    entry = FaqEntry.objects.get(question="What are your opening hours?")
    assert entry.category == "hours" and entry.url == "https://example.com/hours"
    chunk = entry.chunks.get()
    assert chunk.title == "What are your opening hours?"
    assert (
        chunk.text
        == "Q: What are your opening hours?\nA: We are open 9:00-18:00 Monday to Saturday."
    )
    expected = providers.get_provider("local").embed(["What are your opening hours?"])[0]
    assert np.allclose(np.asarray(chunk.embedding), expected, atol=1e-5)


def test_search_vector_is_filled_with_title_and_text(bot):
    ingest(add(bot, "faq.csv", FAQ_CSV))
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM knowledge_chunk WHERE bot_id = %s AND search_vector @@ plainto_tsquery('english', 'workshop e-bike')",
            [bot.pk],
        )
        assert cursor.fetchone()[0] == 1
    assert not Chunk.objects.filter(bot=bot, search_vector__isnull=True).exists()


def test_json_benchmark_format_keeps_ids_titles_and_alternate_questions(bot):
    entries = [
        {
            "faq_id": "rent_bike",
            "title": "Bike rental",
            "question": "Can I rent a bike?",
            "answer": "Yes, from 25 EUR a day.",
            "example_questions": ["do you hire out bicycles", "rent a bike for the weekend"],
        },
        {
            "faq_id": "gift",
            "question": "Do you sell gift cards?",
            "answer": "Yes, from 10 EUR.",
            "alternate_questions": ["gift voucher"],
        },
    ]
    source = services.faq_entries_import(bot=bot, name="kb", entries=entries, enqueue=False)
    source = services.source_ingest(source_id=source.pk)
    assert source.status == Source.Status.READY and source.kind == Source.Kind.JSON
    rent = FaqEntry.objects.get(external_id="rent_bike")
    assert rent.alternate_questions == [
        "Bike rental",
        "do you hire out bicycles",
        "rent a bike for the weekend",
    ]
    assert sorted(rent.chunks.values_list("title", flat=True)) == sorted(
        [
            "Can I rent a bike?",
            "Bike rental",
            "do you hire out bicycles",
            "rent a bike for the weekend",
        ]
    )
    assert source.chunk_count == 6
    assert {c.text for c in rent.chunks.all()} == {
        "Q: Can I rent a bike?\nA: Yes, from 25 EUR a day."
    }


def test_jsonl_upload_reports_bad_lines(bot):
    data = '{"question": "Do you ship abroad?", "answer": "Within the EU only."}\nnot json\n{"question": "no answer"}\n'
    source = ingest(add(bot, "kb.jsonl", data))
    assert source.status == Source.Status.READY
    assert source.warnings == [
        "Line 2: not valid JSON; skipped.",
        "Line 3: needs a question and an answer; skipped.",
    ]


def test_markdown_document_is_chunked_by_headings_and_qa_pairs_kept_whole(bot):
    text = (
        "# Rental policy\n\nBikes are rented by the day. "
        + "Helmets and locks are included. " * 60
        + "\n\n## Can I extend a rental?\n\nYes, call us before noon on the last day.\n"
    )
    source = ingest(add(bot, "rentals.md", text))
    assert source.status == Source.Status.READY and source.kind == Source.Kind.MARKDOWN
    docs = list(Chunk.objects.filter(source=source, faq__isnull=True))
    assert len(docs) >= 2 and all(c.title == "Rental policy" for c in docs)
    assert all(len(c.text) <= 1200 for c in docs)
    faq = FaqEntry.objects.get(source=source)
    assert faq.question == "Can I extend a rental?" and faq.answer.startswith("Yes, call us")


def test_plain_text_without_structure_becomes_sections(bot):
    source = ingest(
        add(bot, "notes.txt", "Our workshop is behind the shop.\n\nParking is free for customers.")
    )
    chunk = Chunk.objects.get(source=source)
    assert (
        source.kind == Source.Kind.TEXT
        and chunk.title == "notes"
        and "Parking is free" in chunk.text
    )


def test_plain_text_qa_pairs_become_faq_entries(bot):
    source = ingest(
        add(
            bot,
            "faq.txt",
            "Q: Do you sell helmets?\nA: Yes, from 30 EUR.\n\nQ: Is parking free?\nA: Yes.",
        )
    )
    assert list(FaqEntry.objects.filter(source=source).values_list("question", "answer")) == [
        ("Do you sell helmets?", "Yes, from 30 EUR."),
        ("Is parking free?", "Yes."),
    ]


def test_pdf_pages_are_read(bot):
    source = ingest(
        add(
            bot,
            "warranty.pdf",
            pdf_bytes([["Warranty", "Frames carry a lifetime warranty."], ["Wheels: two years."]]),
        )
    )
    assert source.status == Source.Status.READY and source.kind == Source.Kind.PDF
    titles = list(Chunk.objects.filter(source=source).values_list("title", flat=True))
    assert titles == ["warranty, page 1", "warranty, page 2"]
    assert "lifetime warranty" in Chunk.objects.filter(source=source).first().text


def test_docx_headings_become_sections(bot):
    data = docx_bytes(
        [
            ("Repairs", ["We service all brands.", "Book online."]),
            ("Do you do bike fitting?", ["Yes, 45 minutes, 60 EUR."]),
        ]
    )
    source = ingest(add(bot, "guide.docx", data))
    assert source.kind == Source.Kind.DOCX and source.status == Source.Status.READY
    assert Chunk.objects.get(source=source, faq__isnull=True).title == "Repairs"
    assert FaqEntry.objects.get(source=source).answer == "Yes, 45 minutes, 60 EUR."


def test_ingest_twice_keeps_one_set_of_chunks(bot):
    source = add(bot, "faq.csv", FAQ_CSV)
    ingest_source.apply(args=[source.pk])
    ingest_source.apply(args=[source.pk])  # the same message delivered again
    assert Chunk.objects.filter(source=source).count() == 2
    assert FaqEntry.objects.filter(source=source).count() == 2
    services.source_reingest(source=source)
    ingest(source)
    assert Chunk.objects.filter(source=source).count() == 2
    assert FaqEntry.objects.filter(source=source).count() == 2


def test_duplicate_delivery_while_running_does_nothing(bot):
    source = add(bot, "faq.csv", FAQ_CSV)
    token = services._claim(source.pk)  # a first worker holds the claim
    assert token is not None
    result = services.source_ingest(source_id=source.pk)
    assert (
        result.status == Source.Status.PROCESSING
        and not Chunk.objects.filter(source=source).exists()
    )


def test_superseded_run_drops_its_work(bot):
    source = add(bot, "faq.csv", FAQ_CSV)
    token = services._claim(source.pk)
    services.source_reingest(source=source)  # the owner asks again while the first run works
    with pytest.raises(services.Superseded):
        services._ingest(Source.objects.get(pk=source.pk), token)
    assert not Chunk.objects.filter(source=source).exists()
    assert ingest(source).chunk_count == 2


def test_failed_reingest_keeps_previous_chunks(bot):
    source = ingest(add(bot, "faq.csv", FAQ_CSV))
    old_ids = set(Chunk.objects.filter(source=source).values_list("pk", flat=True))
    with source.file.open("wb") as handle:  # the stored file is now unreadable
        handle.write(b"\x00\x01\x02binary")
    services.source_reingest(source=source)
    source = ingest(source)
    assert source.status == Source.Status.FAILED
    assert "Unsupported file type" in source.error
    # The replace is all-or-nothing, so the chunks still in place are the last good ingestion's.
    assert set(Chunk.objects.filter(source=source).values_list("pk", flat=True)) == old_ids
    assert FaqEntry.objects.filter(source=source).count() == 2
    # ...and they keep answering customers.
    from knowledge.selectors import search

    hits = search(bot=bot, query="When are you open?", limit=1)
    assert hits and hits[0].chunk_id in old_ids and "9:00-18:00" in hits[0].answer


def test_source_add_validates_size_emptiness_and_type(bot, settings):
    settings.KNOWLEDGE_MAX_UPLOAD_BYTES = 100
    with pytest.raises(ValidationError, match="limit is"):
        add(bot, "big.csv", "q,a\n" + "x" * 200)
    with pytest.raises(ValidationError, match="empty"):
        add(bot, "empty.csv", "  \n")
    with pytest.raises(ValidationError, match="Unsupported file type"):
        add(bot, "image.csv", b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR")
    with pytest.raises(ValidationError, match="Choose a file"):
        services.source_add(bot=bot)
    assert not Source.objects.exists()


def test_faq_editor_entries_live_in_one_manual_source(bot):
    first = services.faq_entry_create(
        bot=bot, question="Do you open on Sundays?", answer="No, Monday to Saturday."
    )
    second = services.faq_entry_create(
        bot=bot,
        question="Can I pay with PayPal?",
        answer="Yes, online only.",
        alternate_questions=["paypal accepted?", " "],
    )
    assert first.source_id == second.source_id
    manual = Source.objects.get(bot=bot, kind=Source.Kind.MANUAL)
    assert manual.status == Source.Status.PENDING
    manual = ingest(manual)
    assert manual.status == Source.Status.READY and manual.chunk_count == 3
    services.faq_entry_update(
        entry=second, question="Can I pay with PayPal?", answer="Yes, online and in store."
    )
    services.faq_entries_delete(bot=bot, ids=[first.pk])
    manual = ingest(manual)
    assert manual.chunk_count == 1
    assert (
        Chunk.objects.get(source=manual).text
        == "Q: Can I pay with PayPal?\nA: Yes, online and in store."
    )


def test_bulk_delete_ignores_other_bots_entries(bot, other_bot):
    mine = services.faq_entry_create(bot=bot, question="Q1?", answer="A1")
    theirs = services.faq_entry_create(bot=other_bot, question="Q2?", answer="A2")
    assert services.faq_entries_delete(bot=bot, ids=[mine.pk, theirs.pk]) == 1
    assert FaqEntry.objects.filter(pk=theirs.pk).exists()


def test_recovery_requeues_stuck_sources_and_fails_them_after_three_attempts(bot):
    from datetime import timedelta

    from django.utils import timezone

    requeued = add(bot, "a.csv", FAQ_CSV)
    exhausted = add(bot, "b.csv", FAQ_CSV)
    alive = add(bot, "c.csv", FAQ_CSV)
    old = timezone.now() - timedelta(hours=2)
    Source.objects.filter(pk=requeued.pk).update(status="processing", attempts=1, updated_at=old)
    Source.objects.filter(pk=exhausted.pk).update(status="processing", attempts=3, updated_at=old)
    Source.objects.filter(pk=alive.pk).update(
        status="processing", attempts=1, updated_at=timezone.now()
    )
    from knowledge.tasks import recover_stuck_sources

    assert recover_stuck_sources.apply().get() == {"requeued": 1, "failed": 1, "resent": 0}
    requeued.refresh_from_db(), exhausted.refresh_from_db(), alive.refresh_from_db()
    assert requeued.status == Source.Status.PENDING and requeued.attempts == 1
    assert exhausted.status == Source.Status.FAILED and "interrupted 3 times" in exhausted.error
    assert alive.status == Source.Status.PROCESSING
    assert ingest(requeued).status == Source.Status.READY and requeued.attempts == 2


def test_a_stale_claim_can_be_taken_over(bot, settings):
    source = add(bot, "faq.csv", FAQ_CSV)
    first = services._claim(source.pk)
    assert services._claim(source.pk) is None  # fresh claim: a duplicate delivery backs off
    from django.utils import timezone

    from askhandle.jobs import DEAD_AFTER  # the first run's heartbeat went quiet this long

    Source.objects.filter(pk=source.pk).update(updated_at=timezone.now() - DEAD_AFTER)
    second = services._claim(source.pk)
    assert second is not None and second != first
    with pytest.raises(services.Superseded):
        services._ingest(Source.objects.get(pk=source.pk), first)
    assert Source.objects.get(pk=source.pk).attempts == 2


def test_model_service_down_puts_the_source_back_in_the_queue_then_fails_clearly(bot, settings):
    from providers import ProviderUnavailable, get_provider

    source = add(bot, "faq.csv", FAQ_CSV)
    bot.provider = "openai"
    bot.save()
    settings.OPENAI_BASE_URL = "http://127.0.0.1:9/v1"  # nothing listens there
    settings.OPENAI_API_KEY = "sk-test"
    get_provider.cache_clear()
    try:
        with pytest.raises(ProviderUnavailable):
            services.source_ingest(source_id=source.pk)
        source.refresh_from_db()
        assert (
            source.status == Source.Status.PENDING
            and source.stage == "waiting for the model service"
        )
        # The task's last retry gives up with a readable error instead of leaving it queued.
        ingest_source.apply(args=[source.pk], retries=ingest_source.max_retries)
        source.refresh_from_db()
        assert source.status == Source.Status.FAILED
        assert source.error.startswith("The model service stayed unavailable")
    finally:
        get_provider.cache_clear()


def test_editing_one_faq_entry_embeds_only_the_phrasings_that_changed(bot, openai_server):
    from bots.models import Bot

    Bot.objects.filter(pk=bot.pk).update(provider="openai")
    bot.refresh_from_db()
    services.faq_entry_create(
        bot=bot, question="Do you deliver?", answer="Yes.", alternate_questions=["any delivery?"]
    )
    hours = services.faq_entry_create(bot=bot, question="Opening hours?", answer="9 to 18.")
    source = ingest(Source.objects.get(bot=bot, kind=Source.Kind.MANUAL))
    assert source.status == Source.Status.READY, source.error
    embedded = lambda: [text for body in openai_server.bodies for text in body.get("input", [])]  # noqa: E731
    assert sorted(embedded()) == ["Do you deliver?", "Opening hours?", "any delivery?"]
    before = {c.title: list(c.embedding) for c in Chunk.objects.filter(bot=bot)}

    openai_server.bodies.clear()
    services.faq_entry_update(
        entry=hours,
        question="When are you open?",
        answer="9 to 19.",
        alternate_questions=["Opening hours?"],
    )
    source = ingest(source)

    assert source.status == Source.Status.READY and source.chunk_count == 4
    assert embedded() == ["When are you open?"]  # the rest kept their vectors
    after = {c.title: list(c.embedding) for c in Chunk.objects.filter(bot=bot)}
    assert after["Opening hours?"] == before["Opening hours?"]
    assert after["Do you deliver?"] == before["Do you deliver?"]
    answers = {c.title: c.text for c in Chunk.objects.filter(bot=bot)}
    assert answers["Opening hours?"] == "Q: When are you open?\nA: 9 to 19."  # text is new

    openai_server.bodies.clear()
    assert ingest(services.source_reingest(source=source)).status == Source.Status.READY
    assert embedded() == []  # nothing changed, nothing embedded
