"""Hostile and random input: the parsers raise ParseError (a message for the owner) or return
content, never anything else, and never take long. No database: these are pure functions."""

import json
import time

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from knowledge import documents, faq_files, parsing
from knowledge.parsed import ParseError

# Modest and CI-fast; database=None keeps hypothesis from writing .hypothesis/ into the tree.
FUZZ = settings(
    max_examples=150,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)
KINDS = st.sampled_from([None, "csv", "json", "markdown", "text"])
NAMES = st.sampled_from(["faq.csv", "faq.json", "faq.jsonl", "notes.md", "notes.txt", "file"])


def parses_or_refuses(call):
    """Run a parser; ParseError is the only refusal allowed, and success means content."""
    try:
        result = call()
    except ParseError as exc:
        assert exc.messages and all(m.strip() for m in exc.messages)
        return None
    parsed = result[1] if isinstance(result, tuple) else result
    assert parsed.faqs or parsed.sections
    return parsed


@FUZZ
@given(data=st.binary(max_size=2000), name=NAMES, kind=KINDS)
@example(data=b"[" * 5000, name="faq.json", kind=None)
@example(data=b"\xef\xbb\xbf", name="faq.csv", kind="csv")
@example(data=b"\x00\x01\x02", name="faq.txt", kind=None)
def test_random_bytes_only_raise_parse_error(data, name, kind):
    parses_or_refuses(lambda: parsing.parse_bytes(data, name, kind))


@FUZZ
@given(
    prefix=st.sampled_from([b"%PDF-1.4\n", b"%PDF-", b"PK\x03\x04"]),
    rest=st.binary(max_size=2000),
)
def test_random_bytes_that_sniff_as_pdf_or_zip_only_raise_parse_error(prefix, rest):
    parses_or_refuses(lambda: parsing.parse_bytes(prefix + rest, "file.pdf", None))


@FUZZ
@given(text=st.text(max_size=2000), name=NAMES, kind=KINDS)
@example(text="# Title ##   ", name="notes.md", kind="markdown")
@example(text="Q:\nA:\n", name="notes.txt", kind="text")
def test_random_text_only_raises_parse_error(text, name, kind):
    parses_or_refuses(lambda: parsing.parse_bytes(text.encode("utf-8"), name, kind))


@FUZZ
@given(html=st.one_of(st.text(max_size=2000), st.binary(max_size=2000)))
@example(html="")
@example(html="<html><body><main></main></body></html>")
def test_random_web_pages_only_raise_parse_error(html):
    parses_or_refuses(lambda: documents.parse_html(html, "https://example.com/faq"))


JSON_SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=40),
)
FAQ_KEYS = st.sampled_from(
    ["question", "answer", "q", "a", "title", "text", "faqs", "items", "alternate_questions",
     "category", "url", "id", "external_id", "variants"]
)  # fmt: skip
JSON_VALUES = st.recursive(
    JSON_SCALARS,
    lambda children: st.one_of(
        st.lists(children, max_size=6),
        st.dictionaries(st.one_of(FAQ_KEYS, st.text(max_size=10)), children, max_size=6),
    ),
    max_leaves=40,
)


@FUZZ
@given(value=JSON_VALUES, lines=st.booleans())
def test_random_json_structures_only_raise_parse_error(value, lines):
    if lines and isinstance(value, list):
        text = "\n".join(json.dumps(item) for item in value)  # JSON Lines
    else:
        text = json.dumps(value, indent=None if lines else 2)
    parses_or_refuses(lambda: parsing.parse_bytes(text.encode("utf-8"), "faq.json", None))


@FUZZ
@given(
    depth=st.integers(min_value=1, max_value=5000),
    brackets=st.sampled_from(["[]", "{}"]),
    jsonl=st.booleans(),
)
def test_any_nesting_depth_parses_or_says_it_is_too_deep(depth, brackets, jsonl):
    faq = json.dumps({"question": "Do you deliver?", "answer": "Yes, daily."})
    # Built as text: json.dumps itself cannot encode a value this deep.
    opening, closing = ("[", "]") if brackets == "[]" else ('{"faqs": [', "]}")
    text = opening * depth + faq + closing * depth
    if jsonl:
        text = faq + "\n" + text
    levels = (depth if brackets == "[]" else 2 * depth) + 1  # the entry is a level too
    too_deep = "the JSON is nested too deeply (more than 100 levels)"
    try:
        parsed = parsing.parse_bytes(text.encode("utf-8"), "faq.json", None)[1]
    except ParseError as exc:
        assert not jsonl  # the plain line is always read
        if levels > faq_files.JSON_MAX_DEPTH:
            assert exc.messages == [f"T{too_deep[1:]}."]
        else:  # only the top level is read as entries
            assert "No question/answer entries found. Item 1" in exc.messages[0]
    else:
        assert jsonl or depth == 1  # [entry] or {"faqs": [entry]}
        assert parsed.faqs[0].question == "Do you deliver?"
        if jsonl and levels > faq_files.JSON_MAX_DEPTH:
            assert parsed.warnings == [f"Line 2: {too_deep}; skipped."]


CSV_CELLS = st.text(alphabet=st.sampled_from(list("ab ,;\t|\"'\r\n\\#?:Q")), max_size=30)


@FUZZ
@given(
    rows=st.lists(st.lists(CSV_CELLS, max_size=6), max_size=30),
    delimiter=st.sampled_from([",", ";", "\t", "|"]),
    bom=st.booleans(),
    header=st.sampled_from(["", "question,answer\n", "Q;A;Category\n", "id|question|answer\n"]),
)
@example(rows=[['"unclosed', "x"]], delimiter=",", bom=False, header="question,answer\n")
@example(rows=[["a" * 200_000, "b"]], delimiter=",", bom=False, header="")  # over field limit
def test_csv_edge_cases_only_raise_parse_error(rows, delimiter, bom, header):
    text = header + "\n".join(delimiter.join(row) for row in rows)
    data = (b"\xef\xbb\xbf" if bom else b"") + text.encode("utf-8")
    parses_or_refuses(lambda: parsing.parse_bytes(data, "faq.csv", "csv"))


# --- Regressions the fuzzing and the probe found -----------------------------------------------


@pytest.mark.parametrize("depth", [101, 1_000, 100_000])
def test_deeply_nested_json_document_says_it_is_too_deep(depth):
    text = "[" * depth + "]" * depth
    with pytest.raises(ParseError) as caught:
        faq_files.parse_json(text)
    assert caught.value.messages == ["The JSON is nested too deeply (more than 100 levels)."]
    assert parsing.text_kind(text, "upload.json") == "json"  # detection does not crash either


def test_json_nested_exactly_to_the_limit_is_read():
    def document(extra_levels):
        # The outer list is level 1 and the entry level 2; "extra" adds the rest.
        extra = json.loads("[" * extra_levels + "]" * extra_levels)
        return json.dumps([{"question": "Open on Sunday?", "answer": "No.", "extra": extra}])

    limit = faq_files.JSON_MAX_DEPTH
    assert faq_files.parse_json(document(limit - 2)).faqs[0].answer == "No."
    with pytest.raises(ParseError, match=r"nested too deeply \(more than 100 levels\)"):
        faq_files.parse_json(document(limit - 1))
    with pytest.raises(faq_files.JsonTooDeep):
        faq_files.load_json('{"a":' * (limit + 1) + "1" + "}" * (limit + 1))


def test_deeply_nested_jsonl_line_is_named_and_the_rest_kept():
    good = json.dumps({"question": "Do you deliver?", "answer": "Yes."})
    text = "\n".join([good, "[" * 50_000 + "]" * 50_000, good.replace("deliver", "ship")])
    parsed = faq_files.parse_json(text)
    assert [f.question for f in parsed.faqs] == ["Do you deliver?", "Do you ship?"]
    assert parsed.warnings == [
        "Line 2: the JSON is nested too deeply (more than 100 levels); skipped."
    ]


def test_jsonl_with_only_deep_lines_fails_naming_the_line():
    deep = "[" * 5000 + "]" * 5000
    with pytest.raises(ParseError) as caught:
        faq_files.parse_json(f"{deep}\n\n{deep}")
    message = caught.value.messages[0]
    assert message.startswith(
        "No question/answer entries found. Line 1: the JSON is nested too deeply "
        "(more than 100 levels); skipped. (1 more skipped.)"
    )


def test_many_blank_lines_parse_in_linear_time():
    # The Q:/A: search used \s* under re.M, so without a "Q:" after them every blank line
    # rescanned all the following ones: 40,000 blank lines took 47 s.
    started = time.monotonic()
    parsed = documents.parse_text("Intro\n" + "\n" * 50_000 + "Outro", "notes.txt")
    assert time.monotonic() - started < 5
    assert parsed.faqs == [] and parsed.sections[0].text.split() == ["Intro", "Outro"]


def test_padded_markdown_heading_parses_in_linear_time():
    # The heading regex backtracked cubically on trailing spaces: 1,000 took 2 s.
    started = time.monotonic()
    parsed = documents.parse_markdown(
        "# Opening hours" + " " * 5_000 + "x ##\nNine to five.", "a.md"
    )
    assert time.monotonic() - started < 5
    assert parsed.sections[0].title == "Opening hours" + " " * 5_000 + "x"
    assert documents.parse_markdown("## Shipping ##  \nDaily.", "a.md").sections[0].title == (
        "Shipping"
    )


@pytest.mark.parametrize(
    "data",
    [
        "Question;Answer\r\nWann öffnet ihr?;Um 9 Uhr\r\n".encode("utf-16"),  # Excel "Unicode text"
        "Question;Answer\nWann öffnet ihr?;Um 9 Uhr\n".encode("utf-16-le"),  # no byte order mark
        "Question;Answer\rWann öffnet ihr?;Um 9 Uhr\r".encode("latin-1"),  # CR alone ends lines
        "question;answer\nWann öffnet ihr?;Um 9 Uhr\n".encode() + b"\n" * 9000 + b"x;\x00\n",
    ],
    ids=["utf-16", "utf-16-le", "latin-1-cr", "late-nul"],
)
def test_csv_in_utf16_with_cr_line_endings_or_a_late_nul_reads_its_rows(data):
    # UTF-16 was refused as binary, CR-only files were one unreadable row, and a NUL past the
    # first 8 KB reached PostgreSQL (issue 23).
    parsed = parsing.parse_bytes(data, "faq.csv")[1]
    assert [(f.question, f.answer) for f in parsed.faqs] == [("Wann öffnet ihr?", "Um 9 Uhr")]
    assert "\x00" not in parsing.decode_text(data)
