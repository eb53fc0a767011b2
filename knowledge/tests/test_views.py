"""Knowledge dashboard: pages, htmx fragments, tenant isolation."""

import pytest
from django.urls import reverse

from knowledge import services
from knowledge.models import FaqEntry, Source
from knowledge.tasks import ingest_source

from .factories import upload

pytestmark = pytest.mark.django_db


@pytest.fixture
def source(bot):
    return services.source_add(
        bot=bot,
        upload=upload("faq.csv", "question,answer\nDo you deliver?,Yes within 2 days.\n"),
        enqueue=False,
    )


@pytest.fixture
def entry(bot):
    return services.faq_entry_create(
        bot=bot, question="Are you open on Sundays?", answer="No, Monday to Saturday."
    )


def test_page_shows_empty_states_and_tab(owner_client, bot):
    response = owner_client.get(reverse("knowledge:page", args=[bot.pk]))
    assert response.status_code == 200
    content = response.content.decode()
    assert "Nothing learnt yet" in content and "No FAQ entries yet" in content
    assert 'class="active">Knowledge</a>' in content


def test_upload_creates_a_queued_source(owner_client, bot):
    response = owner_client.post(
        reverse("knowledge:source_add", args=[bot.pk]),
        {"file": upload("faq.csv", "question,answer\nDo you deliver?,Yes.\n")},
    )
    assert response.status_code == 302
    source = Source.objects.get(bot=bot)
    assert source.status == Source.Status.PENDING and source.kind == Source.Kind.CSV
    page = owner_client.get(reverse("knowledge:page", args=[bot.pk])).content.decode()
    assert "faq.csv" in page and "Queued" in page and 'hx-trigger="every 1s"' in page


def test_upload_errors_are_shown_in_the_form(owner_client, bot, settings):
    url = reverse("knowledge:source_add", args=[bot.pk])
    response = owner_client.post(
        url,
        {"file": upload("photo.csv", b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR")},
        HTTP_HX_REQUEST="true",
    )
    assert response.status_code == 200 and b"<html" not in response.content
    assert b"Unsupported file type" in response.content
    settings.KNOWLEDGE_MAX_UPLOAD_BYTES = 10
    response = owner_client.post(url, {"file": upload("faq.csv", "question,answer\nA?,B\n")})
    assert response.status_code == 422 and b"the limit is" in response.content
    response = owner_client.post(url, {"url": "http://127.0.0.1/admin/"})
    assert b"private or local network address" in response.content
    response = owner_client.post(url, {})
    assert b"Choose a file to upload or enter a web address" in response.content
    assert not Source.objects.exists()


def test_htmx_upload_returns_the_panel_fragment(owner_client, bot):
    response = owner_client.post(
        reverse("knowledge:source_add", args=[bot.pk]),
        {"file": upload("guide.md", "# Guide\n\nWe fix bikes.")},
        HTTP_HX_REQUEST="true",
    )
    assert response.status_code == 200 and b"<html" not in response.content
    assert b'id="sources-panel"' in response.content and b"guide.md" in response.content


def test_source_row_polls_until_final_then_stops(owner_client, bot, source):
    url = reverse("knowledge:source_row", args=[bot.pk, source.pk])
    response = owner_client.get(url, HTTP_HX_REQUEST="true")
    assert response.status_code == 200 and b'hx-trigger="every 1s"' in response.content
    assert b"<html" not in response.content
    ingest_source.apply(args=[source.pk])
    response = owner_client.get(url, HTTP_HX_REQUEST="true")
    assert response.status_code == 286
    assert b"Ready" in response.content and b"every 1s" not in response.content


def test_processing_row_shows_progress(owner_client, bot, source):
    Source.objects.filter(pk=source.pk).update(
        status="processing", stage="embedding", progress_done=30, progress_total=120
    )
    response = owner_client.get(
        reverse("knowledge:source_row", args=[bot.pk, source.pk]), HTTP_HX_REQUEST="true"
    )
    content = response.content.decode()
    assert 'aria-valuenow="25"' in content and "Embedding: 30 / 120" in content


def test_failed_source_shows_error_and_warnings(owner_client, bot, source):
    Source.objects.filter(pk=source.pk).update(
        status="failed",
        error="This PDF is password-protected.",
        warnings=["Line 4: missing answer; row skipped."],
        chunk_count=3,
    )
    response = owner_client.get(
        reverse("knowledge:source_row", args=[bot.pk, source.pk]), HTTP_HX_REQUEST="true"
    )
    content = response.content.decode()
    assert response.status_code == 286
    assert "password-protected" in content and "Line 4: missing answer" in content
    assert "previous version (3 chunks) still answers" in content


def test_reingest_and_delete(owner_client, bot, source):
    ingest_source.apply(args=[source.pk])
    response = owner_client.post(
        reverse("knowledge:source_reingest", args=[bot.pk, source.pk]), HTTP_HX_REQUEST="true"
    )
    assert response.status_code == 200 and b"Queued" in response.content
    assert Source.objects.get(pk=source.pk).status == Source.Status.PENDING
    response = owner_client.post(reverse("knowledge:source_delete", args=[bot.pk, source.pk]))
    assert response.status_code == 302
    assert (
        not Source.objects.filter(pk=source.pk).exists()
        and not FaqEntry.objects.filter(bot=bot).exists()
    )


def test_faq_add_edit_delete_via_htmx(owner_client, bot):
    response = owner_client.post(
        reverse("knowledge:faq_create", args=[bot.pk]),
        {
            "question": "Do you rent tandems?",
            "answer": "Yes, 60 EUR a day.",
            "alternate_questions": "tandem hire\n",
        },
        HTTP_HX_REQUEST="true",
    )
    assert response.status_code == 200 and b"<html" not in response.content
    assert "knowledge-changed" in response.headers["HX-Trigger"]
    entry = FaqEntry.objects.get(bot=bot)
    assert entry.alternate_questions == ["tandem hire"] and entry.source.kind == Source.Kind.MANUAL
    assert b"Do you rent tandems?" in response.content

    edit_url = reverse("knowledge:faq_edit", args=[bot.pk, entry.pk])
    response = owner_client.get(edit_url, HTTP_HX_REQUEST="true")
    assert (
        b'name="e%d-question"' % entry.pk in response.content and b"<html" not in response.content
    )
    response = owner_client.post(
        edit_url,
        {
            f"e{entry.pk}-question": "Do you rent tandems?",
            f"e{entry.pk}-answer": "Yes, 65 EUR a day.",
            f"e{entry.pk}-alternate_questions": "",
        },
        HTTP_HX_REQUEST="true",
    )
    assert response.status_code == 200 and b"65 EUR" in response.content
    entry.refresh_from_db()
    assert entry.answer == "Yes, 65 EUR a day." and entry.alternate_questions == []

    response = owner_client.post(
        edit_url, {f"e{entry.pk}-question": "", f"e{entry.pk}-answer": "x"}, HTTP_HX_REQUEST="true"
    )
    assert b"This field is required" in response.content

    response = owner_client.post(
        reverse("knowledge:faq_delete", args=[bot.pk, entry.pk]), HTTP_HX_REQUEST="true"
    )
    assert response.status_code == 200 and not FaqEntry.objects.filter(pk=entry.pk).exists()


def test_faq_create_without_answer_shows_error(owner_client, bot):
    response = owner_client.post(
        reverse("knowledge:faq_create", args=[bot.pk]), {"question": "Why?"}, HTTP_HX_REQUEST="true"
    )
    assert b"This field is required" in response.content and not FaqEntry.objects.exists()


def test_faq_search_and_bulk_delete(owner_client, bot):
    for i, topic in enumerate(["delivery", "returns", "repairs"]):
        services.faq_entry_create(
            bot=bot, question=f"Question about {topic}?", answer=f"Answer {i}", category=topic
        )
    response = owner_client.get(
        reverse("knowledge:faq_list", args=[bot.pk]) + "?q=repair", HTTP_HX_REQUEST="true"
    )
    content = response.content.decode()
    assert "Question about repairs?" in content and "Question about delivery?" not in content
    assert "1 of 3 match" in content and "<html" not in content
    response = owner_client.get(
        reverse("knowledge:faq_list", args=[bot.pk]) + "?q=zzz", HTTP_HX_REQUEST="true"
    )
    assert "No entries match" in response.content.decode()
    page = owner_client.get(
        reverse("knowledge:page", args=[bot.pk]) + "?q=returns"
    ).content.decode()
    assert "Question about returns?" in page and "Question about delivery?" not in page

    ids = list(
        FaqEntry.objects.filter(category__in=["delivery", "returns"]).values_list("pk", flat=True)
    )
    response = owner_client.post(
        reverse("knowledge:faq_bulk_delete", args=[bot.pk]), {"ids": ids}, HTTP_HX_REQUEST="true"
    )
    assert b"Deleted 2 entries" in response.content
    assert list(FaqEntry.objects.values_list("category", flat=True)) == ["repairs"]


def test_other_tenant_gets_404_everywhere(other_client, bot, source, entry):
    urls = [
        ("get", reverse("knowledge:page", args=[bot.pk])),
        ("post", reverse("knowledge:source_add", args=[bot.pk])),
        ("get", reverse("knowledge:source_row", args=[bot.pk, source.pk])),
        ("post", reverse("knowledge:source_reingest", args=[bot.pk, source.pk])),
        ("post", reverse("knowledge:source_delete", args=[bot.pk, source.pk])),
        ("get", reverse("knowledge:faq_list", args=[bot.pk])),
        ("post", reverse("knowledge:faq_create", args=[bot.pk])),
        ("get", reverse("knowledge:faq_row", args=[bot.pk, entry.pk])),
        ("get", reverse("knowledge:faq_edit", args=[bot.pk, entry.pk])),
        ("post", reverse("knowledge:faq_edit", args=[bot.pk, entry.pk])),
        ("post", reverse("knowledge:faq_delete", args=[bot.pk, entry.pk])),
        ("post", reverse("knowledge:faq_bulk_delete", args=[bot.pk])),
    ]
    for method, url in urls:
        response = getattr(other_client, method)(
            url, {"ids": [entry.pk]} if method == "post" else None, HTTP_HX_REQUEST="true"
        )
        assert response.status_code == 404, url
    assert (
        Source.objects.filter(pk=source.pk).exists()
        and FaqEntry.objects.filter(pk=entry.pk).exists()
    )


def test_source_of_another_bot_is_404_under_my_bot(owner_client, bot, other_bot):
    theirs = services.source_add(bot=other_bot, upload=upload("x.txt", "Secret"), enqueue=False)
    response = owner_client.get(
        reverse("knowledge:source_row", args=[bot.pk, theirs.pk]), HTTP_HX_REQUEST="true"
    )
    assert response.status_code == 404


def test_anonymous_is_sent_to_login(client, bot):
    response = client.get(reverse("knowledge:page", args=[bot.pk]))
    assert response.status_code == 302 and "/accounts/login" in response.url


def test_changing_the_provider_in_settings_queues_one_switch_and_sources_keep_answering(
    owner_client, bot, source
):
    from knowledge.models import Reembedding

    ingest_source.apply(args=[source.pk])
    data = {
        "name": bot.name,
        "slug": bot.slug,
        "greeting": "Hi",
        "instructions": "",
        "mode": "rag",
        "fallback_message": "No idea",
        "provider": "local",
        "embedding_model": "",
        "chat_model": "",
        "direct_threshold": "0.8",
        "answer_threshold": "0.5",
        "primary_colour": "#123456",
    }
    owner_client.post(reverse("bots:edit", args=[bot.pk]), data)
    assert not Reembedding.objects.filter(bot=bot).exists()  # the model did not change
    response = owner_client.post(
        reverse("bots:edit", args=[bot.pk]), {**data, "provider": "openai"}, follow=True
    )
    assert Source.objects.get(pk=source.pk).status == Source.Status.READY
    job = Reembedding.objects.get(bot=bot)
    assert job.status == Reembedding.Status.QUEUED
    assert (job.from_model, job.to_model) == (
        "local:all-MiniLM-L6-v2",
        "openai:text-embedding-3-small",
    )
    assert b"keeps answering with the previous model" in response.content


def test_uploaded_files_are_never_served_as_urls(owner_client, bot):
    source = services.source_add(
        bot=bot, upload=upload("faq.csv", "question,answer\nHi?,Hello.\n"), enqueue=False
    )
    assert source.file.name and source.file.storage.exists(source.file.name)
    # Not even to the owner: files are read by the worker, never linked.
    assert owner_client.get(f"/media/{source.file.name}").status_code == 404
