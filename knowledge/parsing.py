"""Turn uploaded bytes into FAQ entries and document sections.

Types are recognised by CONTENT, never by the file name alone: PDF magic, a zip holding a Word
document, or text that decodes as UTF-16, UTF-8 (BOM allowed) or Latin-1. The name only chooses
between text flavours (CSV, JSON, Markdown, plain text) when the content fits several.

Every failure raises `ParseError` with a message meant for the business owner.
"""

from __future__ import annotations

import codecs
import csv
import io
import json
import re
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field

from django.core.exceptions import ValidationError
from django.utils.text import capfirst
from django.utils.translation import gettext as _


class ParseError(ValidationError):
    """The file cannot be read; the message is shown in the dashboard as is."""


@dataclass
class FaqItem:
    question: str
    answer: str
    category: str = ""
    url: str = ""
    alternate_questions: list[str] = field(default_factory=list)
    external_id: str = ""


@dataclass
class Section:
    title: str
    text: str


@dataclass
class Parsed:
    faqs: list[FaqItem] = field(default_factory=list)
    sections: list[Section] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


# --- Content sniffing -------------------------------------------------------------------------

PDF, DOCX, TEXT = "pdf", "docx", "text"

# Zip bombs: a DOCX is a zip; check what it claims to hold before reading any of it.
DOCX_MAX_UNCOMPRESSED = 100 * 1024 * 1024
DOCX_MAX_RATIO = 100
DOCX_MAX_MEMBERS = 2000


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


def check_docx_archive(data: bytes) -> None:
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
        infos = archive.infolist()
    except (zipfile.BadZipFile, OSError, ValueError) as exc:
        raise ParseError(_("The file looks like a zip archive but cannot be opened.")) from exc
    names = {info.filename for info in infos}
    if "word/document.xml" not in names:
        raise ParseError(
            _(
                "Unsupported file type: this zip archive is not a Word document (DOCX). "
                "Upload CSV, JSON, Markdown, text, PDF or DOCX."
            )
        )
    if len(infos) > DOCX_MAX_MEMBERS:
        raise ParseError(_("This Word document has too many parts to be a real document."))
    total = sum(info.file_size for info in infos)
    if total > DOCX_MAX_UNCOMPRESSED:
        raise ParseError(
            _(
                "This Word document expands to %(size)s MB; the limit is %(limit)s MB "
                "(possible zip bomb)."
            )
            % {"size": total // (1024 * 1024), "limit": DOCX_MAX_UNCOMPRESSED // (1024 * 1024)}
        )
    for info in infos:
        if info.file_size > 1024 * 1024 and info.file_size > DOCX_MAX_RATIO * max(
            info.compress_size, 1
        ):
            raise ParseError(
                _(
                    "This Word document is compressed suspiciously well (possible zip bomb); refused."
                )
            )


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


# --- CSV ----------------------------------------------------------------------------------------

# Column names owners use, in the bot languages too (a Dutch or German owner's spreadsheet says
# "Vraag;Antwoord" or "Frage;Antwort"). Compared lower-cased, spaces and hyphens as "_".
HEADER_ALIASES = {
    "question": {
        "question", "questions", "q", "query", "prompt", "title",
        "vraag", "vragen", "frage", "fragen", "pregunta", "preguntas", "titel", "titre", "título",
    },
    "answer": {
        "answer", "answers", "a", "response", "reply", "text",
        "antwoord", "antwoorden", "antwort", "antworten", "réponse", "réponses", "reponse",
        "respuesta", "respuestas", "tekst",
    },
    "category": {
        "category", "categories", "topic", "section", "group", "tag",
        "categorie", "categorieën", "kategorie", "catégorie", "categoría", "thema", "onderwerp",
        "rubrik", "rubrique", "tema",
    },
    "url": {"url", "link", "source", "source_url", "href", "lien", "enlace", "bron", "quelle"},
    "alternate_questions": {
        "alternate_questions",
        "alternates",
        "alternatives",
        "variants",
        "example_questions",
    },
    "external_id": {"id", "faq_id", "external_id", "key"},
}  # fmt: skip
POSITIONAL = ["question", "answer", "category", "url"]


def csv_rows(text: str) -> Iterator[tuple[int, list[str] | None, str]]:
    """(line, stripped cells, "") for each row of CSV text, or (line, None, why) for a row the
    csv module cannot read. The delimiter is sniffed (comma, semicolon as Excel writes it in
    Dutch and German, tab, pipe) and every line ending is one (CR alone, as old Mac exports)."""
    sample = text[:16384].replace("\r\n", "\n").replace("\r", "\n")
    try:
        dialect = csv.Sniffer().sniff(sample, delimiters=",;\t|")
    except csv.Error:
        dialect = csv.excel
    # newline="": the csv module splits lines itself, on any ending, and keeps quoted ones.
    reader = csv.reader(io.StringIO(text, newline=""), dialect)
    while True:
        try:
            row = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            yield reader.line_num, None, str(exc)
            continue
        yield reader.line_num, [cell.strip() for cell in row], ""


def parse_csv(text: str) -> Parsed:
    result = Parsed()
    columns: dict[str, int] | None = None
    for line, cells, error in csv_rows(text):
        if cells is None:
            result.warnings.append(
                _("Line %(line)s: unreadable row (%(error)s); skipped.")
                % {"line": line, "error": error}
            )
            continue
        if not any(cells):
            continue
        if columns is None:
            columns = _header_columns(cells)
            if columns is not None:
                continue
            columns = {name: i for i, name in enumerate(POSITIONAL)}
        item = _row_item(cells, columns)
        if item is None:
            if len(cells) <= columns["question"] or not cells[columns["question"]]:
                warning = _("Line %(line)s: missing question; row skipped.")
            else:
                warning = _("Line %(line)s: missing answer; row skipped.")
            result.warnings.append(warning % {"line": line})
            continue
        result.faqs.append(item)
    if not result.faqs:
        if result.warnings:
            raise ParseError(
                _(
                    "No question/answer rows found. The CSV needs a question column and an "
                    "answer column (%(n)s rows were malformed)."
                )
                % {"n": len(result.warnings)}
            )
        raise ParseError(
            _(
                "No question/answer rows found. The CSV needs a question column and an answer "
                "column."
            )
        )
    return result


def _header_columns(cells: list[str]) -> dict[str, int] | None:
    found: dict[str, int] = {}
    for i, cell in enumerate(cells):
        key = re.sub(r"[\s\-]+", "_", cell.lower())
        for name, aliases in HEADER_ALIASES.items():
            if key in aliases and name not in found:
                found[name] = i
                break
    if "question" in found and "answer" in found:
        return found
    return None


def _row_item(cells: list[str], columns: dict[str, int]) -> FaqItem | None:
    def get(name: str) -> str:
        i = columns.get(name)
        return cells[i] if i is not None and i < len(cells) else ""

    question, answer = get("question"), get("answer")
    if not question or not answer:
        return None
    alternates = [a.strip() for a in re.split(r"[|\n]", get("alternate_questions")) if a.strip()]
    return FaqItem(
        question=question,
        answer=answer,
        category=get("category")[:120],
        url=get("url") if get("url").startswith(("http://", "https://")) else "",
        alternate_questions=alternates,
        external_id=get("external_id")[:200],
    )


# --- JSON / JSONL ---------------------------------------------------------------------------------

# An FAQ needs three or four levels. The limit sits far below the depth at which json's C
# decoder raises RecursionError (about a thousand), so every deep file gets the same message.
JSON_MAX_DEPTH = 100


def _too_deep() -> str:
    return _("the JSON is nested too deeply (more than %(n)s levels)") % {"n": JSON_MAX_DEPTH}


class JsonTooDeep(ValueError):
    """Nested deeper than JSON_MAX_DEPTH."""


def load_json(text: str):
    """json.loads with a nesting limit; raises JsonTooDeep, or ValueError for invalid JSON."""
    try:
        data = json.loads(text)
    except RecursionError as exc:
        raise JsonTooDeep(_too_deep()) from exc
    # Walked with a stack, not recursion: the decoded value is at most ~1000 levels deep.
    stack = [(data, 1)]
    while stack:
        value, depth = stack.pop()
        if isinstance(value, dict):
            value = value.values()
        elif not isinstance(value, list):
            continue
        if depth > JSON_MAX_DEPTH:
            raise JsonTooDeep(_too_deep())
        stack.extend((child, depth + 1) for child in value if isinstance(child, dict | list))
    return data


def parse_json(text: str) -> Parsed:
    result = Parsed()
    lines = [(n, line) for n, line in enumerate(text.splitlines(), 1) if line.strip()]
    try:
        records = _json_records(load_json(text))
        numbered = [
            (i + 1, record, _("Item %(n)s") % {"n": i + 1}) for i, record in enumerate(records)
        ]
    except JsonTooDeep:
        if len(lines) == 1 or not _is_json_line(lines[0][1]):
            # One document (on one line, or pretty-printed over several), not JSON Lines.
            raise ParseError(capfirst(_too_deep()) + ".") from None
        numbered = _json_lines(lines, result)
    except ValueError:
        numbered = _json_lines(lines, result)
    for _n, record, where in numbered:
        item = _json_item(record)
        if item is None:
            result.warnings.append(
                _("%(where)s: needs a question and an answer; skipped.") % {"where": where}
            )
        else:
            result.faqs.append(item)
    if not result.faqs:
        problems = f" {result.warnings[0]}" if result.warnings else ""
        if len(result.warnings) > 1:
            problems += " " + _("(%(n)s more skipped.)") % {"n": len(result.warnings) - 1}
        raise ParseError(
            _(
                "No question/answer entries found.%(problems)s Use a JSON list or JSON Lines of "
                'objects with "question" and "answer".'
            )
            % {"problems": problems}
        )
    return result


def _is_json_line(line: str) -> bool:
    """Whether one line is a JSON value on its own (too deep counts: it is still JSON Lines)."""
    try:
        load_json(line)
    except JsonTooDeep:
        return True
    except ValueError:
        return False
    return True


def _json_lines(lines: list[tuple[int, str]], result: Parsed) -> list[tuple[int, object, str]]:
    numbered: list[tuple[int, object, str]] = []
    for n, line in lines:
        try:
            numbered.append((n, load_json(line), _("Line %(n)s") % {"n": n}))
        except JsonTooDeep:
            result.warnings.append(
                _("Line %(n)s: %(problem)s; skipped.") % {"n": n, "problem": _too_deep()}
            )
        except ValueError:
            result.warnings.append(_("Line %(n)s: not valid JSON; skipped.") % {"n": n})
    return numbered


def _json_records(data) -> list:
    if isinstance(data, dict):
        for key in ("faqs", "faq", "entries", "items", "data", "questions"):
            if isinstance(data.get(key), list):
                return data[key]
        return [data]
    if isinstance(data, list):
        return data
    raise ValueError("not a list or object")


def _json_item(record) -> FaqItem | None:
    if not isinstance(record, dict):
        return None

    def text(*keys) -> str:
        for key in keys:
            value = record.get(key)
            if isinstance(value, str | int | float) and str(value).strip():
                return str(value).strip()
        return ""

    question = text("question", "q", "title", "prompt")
    answer = text("answer", "a", "response", "text")
    if not question or not answer:
        return None
    alternates: list[str] = []
    for key in ("alternate_questions", "example_questions", "alternates", "variants"):
        value = record.get(key)
        if isinstance(value, list):
            alternates += [str(v).strip() for v in value if isinstance(v, str) and v.strip()]
    title = text("title")
    if title and title != question and title not in alternates:
        alternates.insert(0, title)
    seen = {question.lower()}
    unique = [a for a in alternates if not (a.lower() in seen or seen.add(a.lower()))]
    url = text("url", "link")
    return FaqItem(
        question=question,
        answer=answer,
        category=text("category", "topic")[:120],
        url=url if url.startswith(("http://", "https://")) else "",
        alternate_questions=unique,
        external_id=text("faq_id", "external_id", "id")[:200],
    )


# --- Structured documents (Markdown, text, HTML, DOCX, PDF) ----------------------------------------

QA_LINE = re.compile(r"^\s*(?:\*\*)?(Q|Question|A|Answer)\s*[:.)](?:\*\*)?\s*(.*)$", re.I)


def blocks_to_parsed(blocks: list[tuple[str, str]], default_title: str) -> Parsed:
    """Structure (heading, body) blocks: Q:/A: lines and question headings become FAQ entries,
    everything else stays a document section."""
    result = Parsed()
    for heading, body in blocks:
        body = body.strip()
        rest = _extract_qa_lines(body, result.faqs)
        if heading.strip().endswith("?") and rest.strip():
            result.faqs.append(FaqItem(question=heading.strip(), answer=rest.strip()))
            continue
        if rest.strip():
            result.sections.append(
                Section(title=heading.strip() or default_title, text=rest.strip())
            )
    return result


def _extract_qa_lines(body: str, faqs: list[FaqItem]) -> str:
    """Pull "Q: ... / A: ..." pairs out of a block; return the remaining text."""
    # [ \t]*, not \s*: \s also matches newlines, and from every line start of a long run of blank
    # lines the search would rescan the whole run (quadratic; 40,000 blank lines took 47 s).
    if not re.search(r"^[ \t]*(?:\*\*)?(Q|Question)[ \t]*[:.)]", body, re.I | re.M):
        return body
    rest: list[str] = []
    question: list[str] | None = None
    answer: list[str] | None = None

    def flush():
        if question and answer and " ".join(answer).strip():
            faqs.append(
                FaqItem(question=" ".join(question).strip(), answer="\n".join(answer).strip())
            )

    for line in body.splitlines():
        match = QA_LINE.match(line)
        if match and match.group(1).lower().startswith("q"):
            flush()
            question, answer = [match.group(2)], None
        elif match and question is not None:
            answer = [match.group(2)]
        elif answer is not None:
            answer.append(line)
        elif question is not None and line.strip():
            question.append(line.strip())
        else:
            rest.append(line)
    flush()
    return "\n".join(rest)


# The closing #s are stripped in Python: a lazy group followed by `\s*#*\s*$` backtracks
# cubically on a heading line padded with spaces (1,000 spaces took 2 s).
HEADING = re.compile(r"^(#{1,6})\s+(.*)$")


def _heading_text(match: re.Match) -> str:
    return match.group(2).rstrip().rstrip("#").rstrip()


def parse_markdown(text: str, filename: str) -> Parsed:
    blocks: list[tuple[str, str]] = []
    heading, lines = "", []
    in_code = False
    for line in text.splitlines():
        if line.strip().startswith("```"):
            in_code = not in_code
        match = None if in_code else HEADING.match(line)
        if match:
            blocks.append((heading, "\n".join(lines)))
            heading, lines = _heading_text(match), []
        else:
            lines.append(line)
    blocks.append((heading, "\n".join(lines)))
    return _require_content(blocks_to_parsed(blocks, _stem(filename)))


def parse_text(text: str, filename: str) -> Parsed:
    return _require_content(blocks_to_parsed([("", text)], _stem(filename)))


def parse_pdf(data: bytes, filename: str) -> Parsed:
    import pypdf  # the parsers' libraries load with the first file of their kind
    from pypdf.errors import PdfReadError

    try:
        reader = pypdf.PdfReader(io.BytesIO(data))
        if reader.is_encrypted:
            # Some PDFs are "encrypted" with an empty password only to restrict printing.
            try:
                ok = reader.decrypt("")
            except Exception:  # pypdf raises several types for unsupported ciphers
                ok = 0
            if not ok:
                raise ParseError(
                    _("This PDF is password-protected. Remove the password and upload it again.")
                )
        pages = [(page.extract_text() or "") for page in reader.pages]
    except ParseError:
        raise
    except (PdfReadError, ValueError, KeyError, TypeError, OSError) as exc:
        raise ParseError(
            _("This PDF cannot be read (%(error)s); it may be damaged.")
            % {"error": exc.__class__.__name__}
        ) from exc
    except Exception as exc:  # pypdf raises more types (IndexError, AttributeError...) on damage
        raise ParseError(
            _("This PDF cannot be read (%(error)s); it may be damaged.")
            % {"error": exc.__class__.__name__}
        ) from exc
    title = _stem(filename)
    blocks = [
        (f"{title}, page {n}" if len(pages) > 1 else title, text) for n, text in enumerate(pages, 1)
    ]
    parsed = blocks_to_parsed(blocks, title)
    if not parsed.faqs and not parsed.sections:
        raise ParseError(_("This PDF has no text to read (is it a scan? OCR it first)."))
    return parsed


def parse_docx(data: bytes, filename: str) -> Parsed:
    import docx  # the parsers' libraries load with the first file of their kind
    from docx.opc.exceptions import PackageNotFoundError

    check_docx_archive(data)
    try:
        document = docx.Document(io.BytesIO(data))
    except (PackageNotFoundError, KeyError, ValueError, zipfile.BadZipFile) as exc:
        raise ParseError(_("This Word document cannot be read; it may be damaged.")) from exc
    except Exception as exc:  # lxml raises its own errors for broken XML
        raise ParseError(
            _("This Word document cannot be read (%(error)s).") % {"error": exc.__class__.__name__}
        ) from exc
    blocks: list[tuple[str, str]] = []
    heading, lines = "", []
    for paragraph in document.paragraphs:
        style = (paragraph.style.name or "").lower() if paragraph.style is not None else ""
        text = paragraph.text.strip()
        if style.startswith("heading") or style == "title":
            if text:
                blocks.append((heading, "\n\n".join(lines)))
                heading, lines = text, []
        elif text:
            lines.append(text)
    for table in document.tables:
        for row in table.rows:
            cells = [cell.text.strip() for cell in row.cells]
            if any(cells):
                lines.append(" | ".join(cells))
    blocks.append((heading, "\n\n".join(lines)))
    return _require_content(blocks_to_parsed(blocks, _stem(filename)))


DROP_TAGS = (
    "script",
    "style",
    "noscript",
    "nav",
    "footer",
    "header",
    "form",
    "aside",
    "svg",
    "iframe",
    "template",
)
BLOCK_TAGS = {"p", "li", "pre", "blockquote", "td", "th", "dd", "dt", "figcaption"}


def parse_html(html: bytes | str, url: str) -> Parsed:
    import lxml.html  # the parsers' libraries load with the first page fetched

    try:
        root = lxml.html.fromstring(html)
    except (ValueError, lxml.etree.ParserError) as exc:
        raise ParseError(_("The web page is not readable HTML.")) from exc
    page_title = (root.findtext(".//title") or "").strip() or url
    for element in root.xpath("|".join(f"//{tag}" for tag in DROP_TAGS)):
        element.drop_tree()
    body = next(
        (
            found
            for found in (root.find(".//main"), root.find(".//article"), root.find(".//body"))
            if found is not None
        ),
        root,
    )
    blocks: list[tuple[str, str]] = []
    heading, lines = page_title, []
    for element in body.iter():
        tag = element.tag if isinstance(element.tag, str) else ""
        if tag in ("h1", "h2", "h3", "h4", "h5", "h6"):
            text = " ".join(element.text_content().split())
            if text:
                blocks.append((heading, "\n\n".join(lines)))
                heading, lines = text, []
        elif tag in BLOCK_TAGS and not any(
            isinstance(a.tag, str) and a.tag in BLOCK_TAGS for a in element.iterancestors()
        ):
            text = " ".join(element.text_content().split())
            if text:
                lines.append(text)
    blocks.append((heading, "\n\n".join(lines)))
    parsed = blocks_to_parsed(blocks, page_title)
    if not parsed.faqs and not parsed.sections:
        text = " ".join(body.text_content().split())
        if not text:
            raise ParseError(_("The web page has no readable text."))
        parsed.sections.append(Section(title=page_title, text=text))
    return parsed


def _require_content(parsed: Parsed) -> Parsed:
    if not parsed.faqs and not parsed.sections:
        raise ParseError(_("The file has no text to learn from."))
    return parsed


def _stem(filename: str) -> str:
    name = filename.rsplit("/", 1)[-1]
    return name.rsplit(".", 1)[0] if "." in name else name or "Document"


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
