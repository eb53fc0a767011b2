"""Every word a customer reads is in the bot's language: each string of the answer path and the
public chat page is found in every catalogue of locale/ (the /v1 API's errors stay English)."""

from __future__ import annotations

import gettext
import re
from pathlib import Path

import pytest

from bots import languages

ROOT = Path(__file__).resolve().parents[2]
# The customer's side: the chat page and widget, the answer and its framing, the defaults a
# new bot speaks with, and the errors the page shows.
PYTHON_SOURCES = [
    "chat/answering/pipeline.py",
    "chat/public.py",
    "chat/i18n.py",
    "chat/answering/thread_pool.py",
    "chat/ratelimit.py",
    "bots/languages.py",
]
TEMPLATES = ["templates/chat/base.html", "templates/chat/page.html"]

_PY_CALL = re.compile(
    r"\b(?:_|gettext|gettext_noop|gettext_lazy|pgettext)\(\s*((?:\"(?:[^\"\\]|\\.)*\"\s*)+)[,)]"
)
_LITERAL = re.compile(r"\"((?:[^\"\\]|\\.)*)\"")
_TRANSLATE = re.compile(r"{%\s*translate\s+(?:\"([^\"]+)\"|'([^']+)')")
_BLOCK = re.compile(r"{%\s*blocktranslate([^%]*)%}(.*?){%\s*endblocktranslate\s*%}", re.S)


def python_strings(path: Path) -> set[str]:
    found = set()
    for match in _PY_CALL.finditer(path.read_text(encoding="utf-8")):
        parts = _LITERAL.findall(match.group(1))
        found.add("".join(parts).encode().decode("unicode_escape").encode("latin-1").decode())
    return found


def template_strings(path: Path) -> set[str]:
    text = path.read_text(encoding="utf-8")
    found = {double or single for double, single in _TRANSLATE.findall(text)}
    for options, body in _BLOCK.findall(text):
        if "plural" in body:
            body = body.split("{% plural %}")[0]
        body = re.sub(r"{{\s*(\w+)\s*}}", r"%(\1)s", body)
        if "trimmed" in options:
            body = " ".join(body.split())
        found.add(body)
    return found


def customer_strings() -> set[str]:
    strings: set[str] = set()
    for name in PYTHON_SOURCES:
        strings |= python_strings(ROOT / name)
    for name in TEMPLATES:
        strings |= template_strings(ROOT / name)
    return strings


def test_the_extractor_finds_the_answer_paths_strings():
    strings = customer_strings()
    assert "Here is what I found about “%(title)s”:" in strings
    assert languages.DEFAULT_GREETING in strings
    assert "This assistant is very busy right now. Please try again in a moment." in strings
    assert len(strings) >= 25


@pytest.mark.parametrize("code", [c for c in languages.LANGUAGES if c not in ("en", "mul")])
def test_every_customer_facing_string_is_translated(code):
    catalogue = gettext.translation("django", localedir=ROOT / "locale", languages=[code])
    missing = sorted(s for s in customer_strings() if s not in catalogue._catalog)
    assert missing == [], f"{code} lacks {len(missing)}: {missing[:5]}"
