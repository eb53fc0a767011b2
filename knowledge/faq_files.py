"""Reading FAQ files: CSV spreadsheets (any common delimiter, header names in the bot languages)
and JSON or JSON Lines exports. Each returns a `Parsed` of FAQ items, with a warning per row or
item skipped; a file without one usable entry raises `ParseError`."""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Iterator

from django.utils.text import capfirst
from django.utils.translation import gettext as _

from .parsed import FaqItem, Parsed, ParseError

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
