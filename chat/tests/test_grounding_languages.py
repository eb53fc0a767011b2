"""The grounding check reads the bot's language: its local model, its threshold, its stop words,
and sentences that start with accented capitals (chat.answering.grounding.GROUNDING).

The embedding models are real; the OpenAI-compatible chat model is the local stub at the HTTP
boundary (conftest's openai_server), as in test_answer.py.
"""

import pytest

from bots import languages
from bots.services import bot_update
from chat.answering import answer_stream, grounding
from chat.models import Message
from knowledge import services
from knowledge.models import Source

DELIVERY = {
    "faq_id": "bezorgen",
    "question": "Bezorgen jullie?",
    "answer": (
        "We bezorgen binnen Amersfoort en Leusden van dinsdag tot en met zaterdag tussen 9:00 en "
        "12:00. Bezorgen kost €4,95 en is gratis bij een bestelling vanaf €40; bestel uiterlijk "
        "om 16:00 de dag ervoor."
    ),
}


@pytest.fixture
def dutch_bot(bot, openai_server):
    """A Dutch bot that may write answers (an OpenAI-compatible chat model) and knows one entry
    of the demo bakery's FAQ (knowledge/fixtures/demo_nl/faq.csv)."""
    bot_update(bot=bot, language="nl")
    bot.provider = "openai"
    bot.direct_threshold, bot.answer_threshold = 1.0, -1.0  # stub vectors: always generate
    bot.save()
    source = services.faq_entries_import(bot=bot, name="FAQ", entries=[DELIVERY], enqueue=False)
    source = services.source_ingest(source_id=source.pk)
    assert source.status == Source.Status.READY, source.error
    return bot


@pytest.mark.django_db
def test_a_dutch_bot_shows_a_supported_dutch_sentence(dutch_bot, openai_server):
    written = (
        "We brengen je bestelling van dinsdag tot en met zaterdag tussen 9:00 en 12:00 in "
        "Amersfoort en Leusden rond [1]."
    )
    openai_server.replies.append(written)
    assert dutch_bot.may_generate
    events = list(answer_stream(dutch_bot, "Brengen jullie ook taarten rond in Leusden?"))
    kind, result = events[-1]
    assert kind == "done" and result.path == Message.Path.GENERATED
    assert result.text == written == "".join(v for k, v in events if k == "token")
    assert result.grounding["passed"] and result.grounding["checked"] == 1
    # Measured with the multilingual model at the Dutch threshold.
    assert result.grounding["scores"][0] >= grounding.GROUNDING["nl"].threshold


@pytest.mark.django_db
def test_a_dutch_bot_refuses_an_invented_sentence_and_gives_the_owners_answer(
    dutch_bot, openai_server
):
    invented = "Bij bezorging in Leusden rekenen we een kleine toeslag."
    openai_server.replies.append(invented)
    events = list(answer_stream(dutch_bot, "Kost bezorgen in Leusden extra?"))
    kind, result = events[-1]
    shown = "".join(v for k, v in events if k == "token")
    assert "toeslag" not in shown and shown == result.text
    assert result.path == Message.Path.BEST_MATCH and DELIVERY["answer"] in result.text
    assert result.grounding["passed"] is False and result.grounding["sentence"] == invented
    needs = f"needs {grounding.GROUNDING['nl'].threshold:.2f}"
    assert "no sentence of the knowledge says this" in result.grounding["reason"]
    assert needs in result.grounding["reason"]


def test_a_german_sentence_after_a_period_with_an_accented_capital_is_a_sentence_of_its_own():
    text = "Die Sauna ist täglich geöffnet. Über den Ruheraum freuen sich unsere Gäste."
    assert grounding.split_sentences(text) == [
        "Die Sauna ist täglich geöffnet.",
        "Über den Ruheraum freuen sich unsere Gäste.",
    ]
    # Streamed token by token, the written answer is checked in the same two sentences.
    buffer = grounding.SentenceBuffer()
    first, *rest = text.split(" ")
    done = [s for piece in [first, *(" " + word for word in rest)] for s in buffer.feed(piece)]
    assert done + buffer.rest() == grounding.split_sentences(text)


def test_sentences_split_at_the_marks_of_each_language_but_not_in_a_german_date():
    assert grounding.split_sentences("¿Tienes cita? ¡Claro! Él te atiende.") == [
        "¿Tienes cita?",
        "¡Claro!",
        "Él te atiende.",
    ]
    assert grounding.split_sentences("Il faut commander. À bientôt.") == [
        "Il faut commander.",
        "À bientôt.",
    ]
    assert grounding.split_sentences("Am 24. Dezember ist offen. Ab 20. Jänner auch.") == [
        "Am 24. Dezember ist offen.",
        "Ab 20. Jänner auch.",
    ]
    assert grounding.split_sentences("We open at 9:00. 12 bikes are ready. Call us.") == [
        "We open at 9:00.",
        "12 bikes are ready.",
        "Call us.",
    ]


def test_every_bot_language_has_its_grounding_settings_and_english_keeps_minilm():
    assert set(grounding.GROUNDING) == set(languages.LANGUAGES)
    for code, setting in grounding.GROUNDING.items():
        if code != languages.OTHER:
            assert setting.model == languages.local_embedding_model(code), code
            assert setting.stopwords, code
    english = grounding.grounding_for("en")
    assert english.model == languages.ENGLISH_MODEL and english.threshold == 0.62
    assert grounding.grounding_for(None) is english
    assert grounding.grounding_for("nl").model == languages.MULTILINGUAL_MODEL
    # Dutch function words are not content; English ones still are not for English.
    assert grounding.content_words(
        "Wij hebben ook taarten", grounding.GROUNDING["nl"].stopwords
    ) == ["taarten"]
    assert grounding.content_words("We also have cakes") == ["cakes"]
