"""Getting started: paste an FAQ (or upload one), watch it being read, try its own questions."""

from __future__ import annotations

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from knowledge.models import FaqEntry, Source
from knowledge.tasks import ingest_source

pytestmark = pytest.mark.django_db

PASTED = """Q: How long does delivery take?
A: Two to three working days.

Q: Can I return an order?
A: Yes, within 30 days of delivery."""


def test_pasted_faq_is_ingested_and_its_questions_are_suggested(owner_client, bot):
    url = reverse("chat:start", args=[bot.pk])
    response = owner_client.post(url, {"text": PASTED})
    assert response.status_code == 302 and response.url == url
    source = Source.objects.get(bot=bot)
    assert source.name == "pasted-faq.txt" and source.status == Source.Status.PENDING

    # While it is queued the fragment keeps polling; the page has no suggestions yet.
    poll = owner_client.get(url, headers={"HX-Request": "true"})
    assert poll.status_code == 200 and b'hx-trigger="every 1s"' in poll.content
    assert b"Try these questions" not in poll.content

    ingest_source.apply(args=[source.pk])
    poll = owner_client.get(url, headers={"HX-Request": "true"})
    assert poll.status_code == 286  # final: htmx stops polling
    assert b"Try these questions" in poll.content
    assert sorted(FaqEntry.objects.filter(bot=bot).values_list("question", flat=True)) == [
        "Can I return an order?",
        "How long does delivery take?",
    ]
    assert b'value="How long does delivery take?"' in poll.content
    page = owner_client.get(url).content.decode()
    assert f"http://testserver/c/{bot.slug}/" in page and "copy-btn" in page
    # The Test page offers them too, one click each.
    test_page = owner_client.get(reverse("chat:playground", args=[bot.pk])).content.decode()
    assert 'value="Can I return an order?"' in test_page


def test_pasted_spreadsheet_rows_are_read_as_csv(owner_client, bot):
    text = (
        "Question\tAnswer\nDo you ship abroad?\tYes, to the EU.\nIs there a warranty?\tTwo years."
    )
    owner_client.post(reverse("chat:start", args=[bot.pk]), {"text": text})
    source = Source.objects.get(bot=bot)
    assert source.name == "pasted-faq.csv"
    ingest_source.apply(args=[source.pk])
    assert FaqEntry.objects.filter(bot=bot).count() == 2


def test_upload_works_too_and_an_empty_form_is_refused(owner_client, bot):
    url = reverse("chat:start", args=[bot.pk])
    response = owner_client.post(url, {"text": ""})
    assert response.status_code == 422 and b"Paste your FAQ or choose a file" in response.content
    upload = SimpleUploadedFile("faq.csv", b"question,answer\nHi?,Hello.\n", "text/csv")
    assert owner_client.post(url, {"file": upload}).status_code == 302
    assert Source.objects.get(bot=bot).name == "faq.csv"


def test_another_workspace_cannot_add_knowledge(other_client, bot):
    response = other_client.post(reverse("chat:start", args=[bot.pk]), {"text": PASTED})
    assert response.status_code == 404
    assert not Source.objects.exists()
