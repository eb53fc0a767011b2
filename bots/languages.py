"""The languages a bot can speak, in one place: adding one is a line here, a catalogue in
locale/ and a file of unrelated questions in training/data/.

For each language: its name, PostgreSQL's text-search configuration (stemming and stop words of
the full-text half of search, knowledge.selectors), and the local embedding model. English bots
keep all-MiniLM-L6-v2, which can be fine-tuned here (training.retrieval) and ranks English FAQs
best; every other language gets multilingual-e5-small, which MiniLM, trained on English, cannot
replace (a Dutch FAQ's customer questions found their entry 10 times in 25 with MiniLM, 21 with
e5). The OpenAI-compatible provider embeds every language with its own model.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.utils import translation
from django.utils.translation import gettext, gettext_lazy


def gettext_noop(message: str) -> str:
    """Marks a string for the catalogues (makemessages) like Django's gettext_noop, which needs
    settings at import time; this module is imported before them by benchmarks and tools."""
    return message


ENGLISH_MODEL = "all-MiniLM-L6-v2"
MULTILINGUAL_MODEL = "multilingual-e5-small"


@dataclass(frozen=True)
class Language:
    code: str
    name: str  # in the language itself, as the owner picks it ("Other language": the owner's)
    text_search: str  # a PostgreSQL text-search configuration
    local_embedding: str  # the local provider's model for this language


LANGUAGES: dict[str, Language] = {
    language.code: language
    for language in (
        Language("en", "English", "english", ENGLISH_MODEL),
        Language("nl", "Nederlands", "dutch", MULTILINGUAL_MODEL),
        Language("de", "Deutsch", "german", MULTILINGUAL_MODEL),
        Language("fr", "Français", "french", MULTILINGUAL_MODEL),
        Language("es", "Español", "spanish", MULTILINGUAL_MODEL),
        # Any other language: understood by the multilingual model, searched without stemming;
        # the chat page's own words stay English. "mul" is ISO 639's code for it.
        Language("mul", gettext_lazy("Other language"), "simple", MULTILINGUAL_MODEL),
    )
}
OTHER = "mul"
DEFAULT = "en"
LANGUAGE_CHOICES = [(language.code, language.name) for language in LANGUAGES.values()]
# Knowledge in a language no bot language covers is still searched: by the multilingual model,
# with PostgreSQL's 'simple' configuration (no stemming, no stop words).
UNSUPPORTED_TEXT_SEARCH = "simple"


def get(code: str | None) -> Language:
    return LANGUAGES.get(code or DEFAULT, LANGUAGES[DEFAULT])


def text_search_config(code: str | None) -> str:
    """The PostgreSQL text-search configuration for a language code ('simple' if unknown)."""
    language = LANGUAGES.get(code or "")
    return language.text_search if language else UNSUPPORTED_TEXT_SEARCH


def local_embedding_model(code: str | None) -> str:
    return get(code).local_embedding


# A new bot's own words until the owner writes theirs, in the bot's language (locale/).
DEFAULT_GREETING = gettext_noop("Hi! How can I help you today?")
DEFAULT_FALLBACK = gettext_noop(
    "Sorry, I don't know the answer to that yet. You can ask for a human and we'll get back to you."
)
# The persona the chat model is told to take, also in the bot's language (the owner reads and
# edits it on the Overview).
DEFAULT_INSTRUCTIONS = gettext_noop("You are a friendly, concise customer-support assistant.")
DEFAULT_TEXTS = {
    "greeting": DEFAULT_GREETING,
    "fallback_message": DEFAULT_FALLBACK,
    "instructions": DEFAULT_INSTRUCTIONS,
}


def default_texts(code: str | None) -> dict[str, str]:
    """{field: the default greeting, fallback message and persona in the language}."""
    with translation.override(get(code).code):
        return {field: gettext(text) for field, text in DEFAULT_TEXTS.items()}


def is_default_text(field: str, text: str) -> bool:
    """Whether `text` is the default of `field` in any language (the owner has not written
    their own), so a change of language may replace it."""
    return any(default_texts(code)[field] == text.strip() for code in LANGUAGES)
