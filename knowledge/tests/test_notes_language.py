"""The worker writes a source's notes (skipped rows, why it failed) in the dashboard language of
the owner who added or re-read it: they are read on the Knowledge tab, not in a log."""

import pytest
from django.utils import translation

from knowledge import services
from knowledge.models import Source

from .factories import upload

pytestmark = pytest.mark.django_db(transaction=True)

CSV = "question,answer\nDo you deliver?,Yes within 2 days.\nMissing answer here\n"


def add(bot, name, data):
    return services.source_add(bot=bot, upload=upload(name, data), enqueue=False)


def test_a_dutch_owners_upload_gets_its_skipped_rows_in_dutch(bot):
    with translation.override("nl"):
        source = add(bot, "faq.csv", CSV)
    assert source.notes_language == "nl"
    source = services.source_ingest(source_id=source.pk)  # the worker: no language active
    assert source.status == Source.Status.READY
    assert source.warnings == ["Regel 3: antwoord ontbreekt; regel overgeslagen."]


def test_a_failure_is_explained_in_the_language_of_who_asked_again(bot):
    with translation.override("de"):
        source = add(bot, "faq.csv", "question,answer\nonly a question\n")
    source = services.source_ingest(source_id=source.pk)
    assert source.error.startswith("Keine Zeilen mit Frage und Antwort gefunden.")
    with translation.override("fr"):  # a French colleague reads it again
        services.source_reingest(source=source)
    source = services.source_ingest(source_id=source.pk)
    assert source.notes_language == "fr"
    assert source.error.startswith("Aucune ligne question/réponse trouvée.")


def test_the_systems_own_requeue_keeps_the_owners_language(bot):
    with translation.override("es"):
        source = add(bot, "faq.csv", CSV)
    services.source_requeue(source_id=source.pk)  # as a model switch does, from a worker
    source.refresh_from_db()
    assert source.notes_language == "es"
    source = services.source_ingest(source_id=source.pk)
    assert source.warnings == ["Línea 3: falta la respuesta; fila omitida."]


def test_an_editors_change_to_the_faq_sets_the_language_of_its_notes(bot):
    with translation.override("nl"):
        entry = services.faq_entry_create(bot=bot, question="Open on Sunday?", answer="No.")
    assert Source.objects.get(pk=entry.source_id).notes_language == "nl"
