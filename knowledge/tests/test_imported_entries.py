"""The owner sees and fixes what the bot answers from: imported FAQ entries are listed, searched,
edited and deleted like hand-written ones, and every source's chunks can be read."""

import pytest
from django.urls import reverse

from knowledge import selectors, services
from knowledge.models import FaqEntry, Source

from .factories import upload

pytestmark = pytest.mark.django_db

CSV = (
    "question,answer\nDo you deliver?,Yes within 2 days.\nCan I pay with cash?,Only in the shop.\n"
)


@pytest.fixture
def imported(bot):
    source = services.source_add(bot=bot, upload=upload("faq.csv", CSV), enqueue=False)
    source = services.source_ingest(source_id=source.pk)
    assert source.status == Source.Status.READY, source.error
    return source


def test_imported_entries_are_listed_with_their_source(owner_client, bot, imported):
    services.faq_entry_create(bot=bot, question="Are you open on Sundays?", answer="No.")
    page = owner_client.get(reverse("knowledge:page", args=[bot.pk])).content.decode()
    assert "Do you deliver?" in page and "Can I pay with cash?" in page
    assert "Are you open on Sundays?" in page
    chunks_url = reverse("knowledge:source_chunks", args=[bot.pk, imported.pk])
    assert f'href="{chunks_url}">faq.csv</a>' in page  # the entry's source, linked


def test_imported_entries_are_searched_and_filtered_by_source(owner_client, bot, imported):
    manual = services.faq_entry_create(bot=bot, question="Are you open on Sundays?", answer="No.")
    url = reverse("knowledge:faq_list", args=[bot.pk])
    found = owner_client.get(url, {"q": "cash"}, HTTP_HX_REQUEST="true").content.decode()
    assert "Can I pay with cash?" in found and "Do you deliver?" not in found
    only = owner_client.get(
        url, {"source": manual.source_id}, HTTP_HX_REQUEST="true"
    ).content.decode()
    assert "Are you open on Sundays?" in only and "Do you deliver?" not in only


def test_editing_an_imported_entry_survives_a_reingest_and_is_what_the_bot_answers(
    owner_client, bot, imported
):
    entry = FaqEntry.objects.get(bot=bot, question="Do you deliver?")
    response = owner_client.post(
        reverse("knowledge:faq_edit", args=[bot.pk, entry.pk]),
        {
            f"e{entry.pk}-question": "Do you deliver?",
            f"e{entry.pk}-answer": "Yes, within 3 working days.",
            f"e{entry.pk}-alternate_questions": "",
            f"e{entry.pk}-category": "",
            f"e{entry.pk}-url": "",
        },
    )
    assert response.status_code == 302
    imported.refresh_from_db()
    assert imported.entries_edited and imported.status == Source.Status.PENDING
    services.source_ingest(source_id=imported.pk)
    # A re-ingest asked for later (the owner's button) keeps the edit: the file is not re-read.
    services.source_reingest(source=Source.objects.get(pk=imported.pk))
    services.source_ingest(source_id=imported.pk)
    answers = set(FaqEntry.objects.filter(source=imported).values_list("answer", flat=True))
    assert answers == {"Yes, within 3 working days.", "Only in the shop."}
    [hit] = selectors.search(bot=bot, query="Do you deliver?", limit=1)
    assert hit.answer == "Yes, within 3 working days."


def test_deleting_an_imported_entry_removes_it_from_search(owner_client, bot, imported):
    entry = FaqEntry.objects.get(bot=bot, question="Can I pay with cash?")
    response = owner_client.post(reverse("knowledge:faq_delete", args=[bot.pk, entry.pk]))
    assert response.status_code == 302
    services.source_ingest(source_id=imported.pk)
    imported.refresh_from_db()
    assert imported.entries_edited and imported.chunk_count == 1
    hits = selectors.search(bot=bot, query="Can I pay with cash?", limit=5)
    assert [h.answer for h in hits] == ["Yes within 2 days."]


def test_a_sources_chunks_can_be_read(owner_client, bot):
    text = (
        "# Warranty\n\nFrames have a lifetime warranty.\n\n# Delivery\n\nWe deliver in two days.\n"
    )
    source = services.source_add(bot=bot, upload=upload("manual.md", text), enqueue=False)
    services.source_ingest(source_id=source.pk)
    page = owner_client.get(reverse("knowledge:source_chunks", args=[bot.pk, source.pk]))
    html = page.content.decode()
    assert page.status_code == 200
    assert "Frames have a lifetime warranty." in html and "We deliver in two days." in html
    assert "2 chunks" in html


def test_another_tenant_gets_404_on_chunks_and_imported_entries(other_client, bot, imported):
    entry = FaqEntry.objects.filter(source=imported).first()
    assert (
        other_client.get(reverse("knowledge:source_chunks", args=[bot.pk, imported.pk])).status_code
        == 404
    )
    assert (
        other_client.get(reverse("knowledge:faq_edit", args=[bot.pk, entry.pk])).status_code == 404
    )
    assert (
        other_client.post(reverse("knowledge:faq_delete", args=[bot.pk, entry.pk])).status_code
        == 404
    )
    assert FaqEntry.objects.filter(pk=entry.pk).exists()
