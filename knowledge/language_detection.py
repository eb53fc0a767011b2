"""Which language a source is written in: py3langid, whose model ships inside its wheel (no
download at first use). The one module that calls it."""

from __future__ import annotations

import re
import threading

from django.conf.locale import LANG_INFO
from django.utils.translation import gettext

from bots import languages

SAMPLE_CHARS = 6000  # enough for a stable guess; classifying a whole manual would cost seconds
MIN_LETTERS = 20  # a guess from fewer letters is noise
_lock = threading.Lock()
_identifier = None


def _classifier():
    global _identifier
    with _lock:
        if _identifier is None:
            from py3langid.langid import MODEL_FILE, LanguageIdentifier  # on first detection

            _identifier = LanguageIdentifier.from_model_file(MODEL_FILE, norm_probs=True)
    return _identifier


def detect(texts: list[str]) -> str:
    """The ISO 639-1 code of the language most of `texts` is written in ("" when there is too
    little text to tell)."""
    sample = "\n".join(texts)[:SAMPLE_CHARS]
    if len(re.findall(r"[^\W\d_]", sample)) < MIN_LETTERS:
        return ""
    code, _probability = _classifier().classify(sample)
    return code


def name(code: str) -> str:
    """The language's name in the active language (Django's table and catalogues), or its code."""
    english = LANG_INFO.get(code, {}).get("name")
    return gettext(english) if english else code


def bot_language_for(code: str) -> str:
    """The bot language that understands a detected language: itself, or 'Other language'."""
    return code if code in languages.LANGUAGES else languages.OTHER
