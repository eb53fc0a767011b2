"""Reading documents: Markdown, plain text, PDF, Word (DOCX) and HTML pages. Each is cut into
(heading, body) blocks; Q:/A: lines and question headings become FAQ entries, the rest stays
document sections. DOCX archives are checked for zip bombs before any part is read."""

from __future__ import annotations

import io
import re
import zipfile

from django.utils.translation import gettext as _

from .parsed import FaqItem, Parsed, ParseError, Section

# Zip bombs: a DOCX is a zip; check what it claims to hold before reading any of it.
DOCX_MAX_UNCOMPRESSED = 100 * 1024 * 1024
DOCX_MAX_RATIO = 100
DOCX_MAX_MEMBERS = 2000


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
