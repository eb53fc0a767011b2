"""The answer pipeline on real retrieval: direct FAQ answers, grounded generation, fallback, errors.

The local embedding model is real; generation goes to the OpenAI-compatible provider served by the
local stub at the HTTP boundary (the slow local chat model is not needed to test the plumbing).
"""

import pytest

from bots.models import Message
from chat.answer import answer, answer_stream
from knowledge import selectors, services
from knowledge.models import Source
from knowledge.tests.factories import SHOP_FAQ, upload

pytestmark = pytest.mark.django_db

FAQ = SHOP_FAQ[:2]  # opening hours, returns
MANUAL = (
    "# Warranty\n\nEvery bicycle frame has a lifetime warranty. Components are covered for two years.\n\n"
    "# Delivery\n\nWe deliver within the city in two working days; elsewhere it takes a week.\n"
)


def ingest(source):
    source = services.source_ingest(source_id=source.pk)
    assert source.status == Source.Status.READY, source.error
    return source


@pytest.fixture
def faq_bot(bot):
    ingest(services.faq_entries_import(bot=bot, name="FAQ", entries=FAQ, enqueue=False))
    return bot


def test_confident_faq_match_returns_the_answer_verbatim_without_calling_the_chat_model(faq_bot):
    faq_bot.chat_model = "no-such-chat-model"  # any chat call would fail and end as "error"
    events = list(answer_stream(faq_bot, "When do you open?"))
    kind, result = events[-1]
    assert kind == "done" and result.path == Message.Path.DIRECT
    assert result.text == "We are open 9:00-18:00 Monday to Saturday."
    assert [v for k, v in events if k == "token"] == [result.text]
    assert result.score >= faq_bot.direct_threshold
    assert result.sources[0].title and result.sources[0].faq_id == result.retrieved[0]["faq_id"]
    assert result.answered and result.latency_ms >= 0 and "search_ms" in result.timings


def test_unrelated_question_gets_the_fallback_message(faq_bot):
    result = answer(faq_bot, "Which planet has the most moons?")
    assert result.path == Message.Path.FALLBACK and not result.answered
    assert result.text == faq_bot.fallback_message
    assert result.score < faq_bot.answer_threshold and result.sources == []
    assert result.retrieved  # candidates are still reported for the test page


def test_empty_knowledge_falls_back_without_error(bot):
    result = answer(bot, "Do you sell gift cards?")
    assert result.path == Message.Path.FALLBACK and result.text == bot.fallback_message
    assert result.retrieved == [] and result.score is None


def test_generate_false_decides_without_writing(faq_bot):
    faq_bot.direct_threshold, faq_bot.answer_threshold = 0.99, 0.2
    result = answer(faq_bot, "is it possible to send back shoes that do not fit", generate=False)
    assert result.path == Message.Path.GENERATED and result.text == ""
    assert result.sources and result.sources[0].title
    assert result.retrieved[0]["score"] >= 0.2


def test_embedding_failure_gives_fallback_with_error_path(faq_bot):
    faq_bot.embedding_model = "no-such-embedding-model"
    result = answer(faq_bot, "When do you open?")
    assert result.path == Message.Path.ERROR and result.text == faq_bot.fallback_message
    assert not result.answered


@pytest.fixture
def openai_bot(bot, openai_server):
    bot.provider = "openai"
    bot.direct_threshold, bot.answer_threshold = 1.0, -1.0  # stub vectors: always generate
    bot.save()
    ingest(services.source_add(bot=bot, upload=upload("manual.md", MANUAL), enqueue=False))
    return bot


def test_generation_is_grounded_in_retrieved_chunks_and_cites_them(openai_bot, openai_server):
    events = list(answer_stream(openai_bot, "How long is the warranty?"))
    kind, result = events[-1]
    assert kind == "done" and result.path == Message.Path.GENERATED
    assert result.text == "Stub answer to: How long is the warranty?"
    assert "".join(v for k, v in events if k == "token").strip() == result.text
    chat = [b for b in openai_server.bodies if "messages" in b][-1]
    system = chat["messages"][0]["content"]
    assert "lifetime warranty" in system and "Cite the entries" in system
    assert chat["messages"][-1] == {"role": "user", "content": "How long is the warranty?"}
    assert {s.title for s in result.sources} <= {r["title"] for r in result.retrieved}
    assert result.sources and "generate_ms" in result.timings


def test_history_is_passed_to_the_model(openai_bot, openai_server):
    history = [
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "Hello! How can I help?"},
    ]
    answer(openai_bot, "And delivery?", history=history)
    chat = [b for b in openai_server.bodies if "messages" in b][-1]
    assert chat["messages"][1:3] == history


def test_chat_failure_mid_answer_gives_fallback_with_error_path(openai_bot, openai_server):
    [vector] = selectors.embed_queries(openai_bot, ["How fast is delivery?"])
    openai_server.fail_next = 20  # every chat attempt, retries included, gets a 503
    result = answer(openai_bot, "How fast is delivery?", vector=vector)
    assert result.path == Message.Path.ERROR and result.text == openai_bot.fallback_message


def test_model_that_declines_with_the_fallback_message_counts_as_unanswered(openai_bot):
    # The stub model echoes "Stub answer to: <question>"; make that the bot's fallback message,
    # i.e. the model replying exactly what the prompt tells it to say when it does not know.
    openai_bot.fallback_message = "Stub answer to: Do you sell unicorns?"
    openai_bot.save()
    result = answer(openai_bot, "Do you sell unicorns?")
    assert result.path == Message.Path.FALLBACK and not result.sources
