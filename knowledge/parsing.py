"""Turn uploaded bytes into FAQ entries and document sections: recognise the file's type and
decode its text here, then hand it to its format's reader (knowledge.faq_files for CSV and JSON,
knowledge.documents for Markdown, text, PDF and DOCX).

Types are recognised by CONTENT, never by the file name alone: PDF magic, a zip holding a Word
document, or text that decodes as UTF-16, UTF-8 (BOM allowed) or Latin-1. The name only chooses
between text flavours (CSV, JSON, Markdown, plain text) when the content fits several.

Every failure raises `ParseError` with a message meant for the business owner.
"""

from __future__ import annotations

import codecs
import re

from django.utils.translation import gettext as _

from .documents import check_docx_archive, parse_docx, parse_markdown, parse_pdf, parse_text
from .faq_files import JsonTooDeep, load_json, parse_csv, parse_json
from .parsed import Parsed, ParseError

PDF, DOCX, TEXT = "pdf", "docx", "text"


def sniff_family(data: bytes) -> str:
    """PDF, DOCX or TEXT from the bytes themselves; raises ParseError for anything else."""
    if not data or not data.strip():
        raise ParseError(_("The file is empty."))
    if data.lstrip()[:5] == b"%PDF-":
        return PDF
    if data[:4] == b"PK\x03\x04":
        check_docx_archive(data)
        return DOCX
    decode_text(data)  # raises for binary content
    return TEXT


def _utf16_codec(data: bytes) -> str | None:
    """'utf-16' for text with a UTF-16 byte order mark (Excel's "Unicode text"), 'utf-16-le' or
    'utf-16-be' for mostly-ASCII text without one: NUL in every other byte, on one side only."""
    if data[:2] in (codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE):
        return "utf-16"
    head = data[:8192]
    if len(head) < 4:
        return None
    even, odd = head[0::2], head[1::2]
    if odd.count(0) > 0.6 * len(odd) and even.count(0) == 0:
        return "utf-16-le"
    if even.count(0) > 0.6 * len(even) and odd.count(0) == 0:
        return "utf-16-be"
    return None


def decode_text(data: bytes) -> str:
    """UTF-16 (with a byte order mark, or ASCII-heavy without one), UTF-8 (with or without BOM),
    else Windows-1252, else Latin-1; binary content is refused. A stray NUL further in is dropped: PostgreSQL
    refuses NUL in text, and no text format means one."""
    codec = _utf16_codec(data)
    if codec:
        try:
            text = data.decode(codec)
        except UnicodeDecodeError as exc:
            raise ParseError(
                _("The file looks like UTF-16 text but does not decode as it. Save it as UTF-8.")
            ) from exc
    elif b"\x00" in data[:8192]:
        raise ParseError(
            _(
                "Unsupported file type: this is a binary file. Upload CSV, JSON, Markdown, text, "
                "PDF or DOCX."
            )
        )
    else:
        try:
            text = data.decode("utf-8-sig")
        except UnicodeDecodeError:
            # Excel saves CSV in Windows-1252 in Western Europe: Latin-1 plus "€", curly quotes
            # and dashes where Latin-1 has control codes. Latin-1 for the 5 bytes it lacks.
            try:
                text = data.decode("cp1252")
            except UnicodeDecodeError:
                text = data.decode("latin-1")
    # Latin-1 decodes any byte and UTF-8 allows control bytes: many controls mean it was not text.
    head = text[:8192]
    controls = sum(
        1 for ch in head if (ord(ch) < 32 and ch not in "\t\n\r\f") or 0x7F <= ord(ch) < 0xA0
    )
    if controls > max(2, len(head) // 100):
        raise ParseError(
            _(
                "Unsupported file type: the content is neither UTF-8 nor Latin-1 text. "
                "Upload CSV, JSON, Markdown, text, PDF or DOCX."
            )
        )
    text = text.lstrip("\ufeff").replace("\x00", "")
    if not text.strip():
        raise ParseError(_("The file is empty."))
    return text


def text_kind(text: str, filename: str = "") -> str:
    """Which text flavour: 'csv', 'json', 'markdown' or 'text' (Source.Kind values)."""
    name = filename.lower()
    stripped = text.lstrip()
    if name.endswith((".json", ".jsonl", ".ndjson")) or stripped[:1] in "[{":
        if _looks_like_json(stripped):
            return "json"
    if name.endswith((".csv", ".tsv")):
        return "csv"
    if name.endswith((".md", ".markdown")) or re.search(r"^#{1,6}\s+\S", text, re.M):
        return "markdown"
    return "text"


def _looks_like_json(text: str) -> bool:
    try:
        load_json(text)
        return True
    except JsonTooDeep:
        return True  # JSON all the same; parse_json says what is wrong with it
    except ValueError:
        first = text.splitlines()[0] if text else ""
        try:
            load_json(first)
            return True
        except JsonTooDeep:
            return True
        except ValueError:
            return False


def parse_bytes(data: bytes, filename: str, kind: str | None = None) -> tuple[str, Parsed]:
    """(kind, Parsed) for uploaded bytes. `kind` (a Source.Kind value) may pick a text flavour;
    the content still decides between PDF, DOCX and text."""
    family = sniff_family(data)
    if family == PDF:
        return "pdf", parse_pdf(data, filename)
    if family == DOCX:
        return "docx", parse_docx(data, filename)
    text = decode_text(data)
    flavour = kind if kind in ("csv", "json", "markdown", "text") else text_kind(text, filename)
    if flavour == "csv":
        return flavour, parse_csv(text)
    if flavour == "json":
        return flavour, parse_json(text)
    if flavour == "markdown":
        return flavour, parse_markdown(text, filename)
    return "text", parse_text(text, filename)
