"""Bad input gives a clear message: refused at upload, or a FAILED source with its error."""

import pytest
from django.core.exceptions import ValidationError
from django.urls import reverse

from knowledge import services
from knowledge.models import Chunk, FaqEntry, Source

from .factories import (
    docx_bytes,
    encrypted_pdf_bytes,
    pdf_bytes,
    plain_zip_bytes,
    upload,
    zip_bomb_docx_bytes,
)

pytestmark = pytest.mark.django_db(transaction=True)


def add(bot, name, data):
    return services.source_add(bot=bot, upload=upload(name, data), enqueue=False)


def ingest(source):
    return services.source_ingest(source_id=source.pk)


@pytest.mark.parametrize(
    "name, data",
    [
        ("picture.csv", b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00"),
        ("setup.pdf", b"MZ\x90\x00\x03\x00\x00\x00\x04\x00\x00\x00\xff\xff"),
        ("archive.docx", plain_zip_bytes()),
        ("noise.txt", bytes(range(1, 32)) * 40),
    ],
)
def test_unsupported_content_is_refused_whatever_the_extension(bot, name, data):
    with pytest.raises(ValidationError, match="Unsupported file type"):
        add(bot, name, data)
    assert not Source.objects.exists()


def test_type_comes_from_content_not_extension(bot):
    assert add(bot, "really-a-pdf.txt", pdf_bytes([["Hello"]])).kind == Source.Kind.PDF
    assert add(bot, "notes.pdf", "Plain words about bikes.").kind == Source.Kind.TEXT
    assert add(bot, "word.bin", docx_bytes([("Title", ["Body"])])).kind == Source.Kind.DOCX


def test_empty_file_is_refused(bot):
    with pytest.raises(ValidationError, match="The file is empty"):
        add(bot, "empty.csv", b"")


def test_file_over_the_limit_is_refused(bot, settings):
    settings.KNOWLEDGE_MAX_UPLOAD_BYTES = 1024
    with pytest.raises(ValidationError, match="the limit is"):
        add(bot, "big.txt", "word " * 1000)


def test_malformed_csv_rows_are_reported_with_line_numbers_and_good_rows_kept(bot):
    data = (
        "question,answer,category\n"
        "Do you deliver?,Yes within 2 days.,delivery\n"
        "Missing answer here\n"
        ",An answer without a question,misc\n"
        '"Multi-line answer?","First line\nsecond line",misc\n'
        "Do you repair tyres?,Yes while you wait.,repairs\n"
    )
    source = ingest(add(bot, "faq.csv", data))
    assert source.status == Source.Status.READY
    assert source.warnings == [
        "Line 3: missing answer; row skipped.",
        "Line 4: missing question; row skipped.",
    ]
    assert list(FaqEntry.objects.filter(source=source).values_list("question", flat=True)) == [
        "Do you deliver?",
        "Multi-line answer?",
        "Do you repair tyres?",
    ]


def test_csv_without_any_good_row_fails_with_a_message(bot):
    source = ingest(add(bot, "faq.csv", "question,answer\nonly a question\nanother\n"))
    assert source.status == Source.Status.FAILED
    assert (
        "No question/answer rows found" in source.error and "2 rows were malformed" in source.error
    )


def test_csv_semicolons_bom_and_latin1(bot):
    bom = "\ufeffQuestion;Answer\nWhere are you?;Hauptstraße 5\n".encode()
    source = ingest(add(bot, "de.csv", bom))
    assert FaqEntry.objects.get(source=source).answer == "Hauptstraße 5"
    latin1 = "question\tanswer\nCafé open?\tOui, très tôt.\n".encode("latin-1")
    source = ingest(add(bot, "fr.tsv", latin1))
    entry = FaqEntry.objects.get(source=source)
    assert (entry.question, entry.answer) == ("Café open?", "Oui, très tôt.")


def test_csv_without_header_reads_question_answer_columns(bot):
    source = ingest(
        add(bot, "faq.csv", "Do you sell helmets?,Yes from 30 EUR\nDo you rent bikes?,Yes\n")
    )
    assert FaqEntry.objects.filter(source=source).count() == 2 and source.warnings == []


def test_json_without_entries_fails(bot):
    source = ingest(add(bot, "kb.json", '{"hello": "world"}'))
    assert (
        source.status == Source.Status.FAILED and "No question/answer entries found" in source.error
    )


DEEP_JSON = "[" * 100_000 + "]" * 100_000


@pytest.mark.django_db  # no commit: the upload view's ingest task is not published
def test_deeply_nested_json_upload_is_accepted_then_fails_with_a_clear_message(owner_client, bot):
    response = owner_client.post(
        reverse("knowledge:source_add", args=[bot.pk]), {"file": upload("deep.json", DEEP_JSON)}
    )
    assert response.status_code == 302  # was a 500 (RecursionError while detecting the type)
    source = ingest(Source.objects.get(bot=bot))
    assert source.kind == Source.Kind.JSON and source.status == Source.Status.FAILED
    assert source.error == "The JSON is nested too deeply (more than 100 levels)."


def test_deeply_nested_jsonl_line_is_skipped_with_its_line_number(bot):
    good = '{"question": "Do you deliver?", "answer": "Yes, daily."}'
    source = ingest(add(bot, "faq.jsonl", f"{good}\n\n{DEEP_JSON}\n"))
    assert source.status == Source.Status.READY, source.error
    assert list(FaqEntry.objects.filter(source=source).values_list("answer", flat=True)) == [
        "Yes, daily."
    ]
    assert source.warnings == [
        "Line 3: the JSON is nested too deeply (more than 100 levels); skipped."
    ]


def test_jsonl_of_only_deep_lines_fails_naming_the_line(bot):
    source = ingest(add(bot, "faq.jsonl", f"{DEEP_JSON}\n{DEEP_JSON}\n"))
    assert source.status == Source.Status.FAILED
    assert "Line 1: the JSON is nested too deeply (more than 100 levels)" in source.error


def test_docx_zip_bomb_is_refused_before_reading(bot):
    with pytest.raises(ValidationError, match="zip bomb"):
        add(bot, "bomb.docx", zip_bomb_docx_bytes(150))


def test_docx_with_suspicious_compression_ratio_is_refused(bot):
    with pytest.raises(ValidationError, match="zip bomb"):
        add(bot, "bomb.docx", zip_bomb_docx_bytes(20))


def test_encrypted_pdf_is_refused(bot):
    with pytest.raises(ValidationError, match="password-protected"):
        add(bot, "secret.pdf", encrypted_pdf_bytes())


def test_encrypted_pdf_found_at_ingest_fails_with_a_message(bot):
    source = add(bot, "ok.pdf", pdf_bytes([["Fine"]]))
    with source.file.open("wb") as handle:
        handle.write(encrypted_pdf_bytes())
    source = ingest(source)
    assert source.status == Source.Status.FAILED and "password-protected" in source.error


def test_damaged_pdf_is_refused(bot):
    with pytest.raises(ValidationError, match="PDF"):
        add(bot, "broken.pdf", b"%PDF-1.4\n1 0 obj << /Type /Catalog >>\nthis is not a pdf")


def test_pdf_without_text_fails_with_a_message(bot):
    source = ingest(add(bot, "scan.pdf", pdf_bytes([[]])))
    assert source.status == Source.Status.FAILED and "no text" in source.error


def test_missing_stored_file_fails_with_a_message(bot):
    source = add(bot, "faq.csv", "question,answer\nA?,B\n")
    source.file.storage.delete(source.file.name)
    source = ingest(source)
    assert source.status == Source.Status.FAILED and "missing" in source.error
    assert not Chunk.objects.exists()


def test_a_windows_1252_csv_keeps_euro_signs_curly_quotes_and_umlauts(bot):
    """Excel's CSV in Western Europe: "€", “ ” and – are bytes Latin-1 reads as control codes."""
    data = (
        "Frage;Antwort\n"
        "Was kostet die Lieferung?;„Nur“ 4,95 € – ab 40 € gratis.\n"
        "Wann öffnet ihr?;Täglich ab 7 Uhr, außer Montag.\n"
    ).encode("cp1252")
    source = ingest(add(bot, "faq.csv", data))
    answers = dict(FaqEntry.objects.filter(source=source).values_list("question", "answer"))
    assert answers == {
        "Was kostet die Lieferung?": "„Nur“ 4,95 € – ab 40 € gratis.",
        "Wann öffnet ihr?": "Täglich ab 7 Uhr, außer Montag.",
    }
