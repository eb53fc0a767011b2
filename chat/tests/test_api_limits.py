"""/v1 limits (finding 4): the conversation a client sends is trimmed to CHAT_MAX_CONTEXT_TOKENS
(oldest turns first) before it reaches the model, and an oversized body is refused with an
OpenAI-shaped 413 before it is parsed."""

import json

import pytest

from chat.apikeys import api_key_create
from knowledge import services
from knowledge.models import Source
from knowledge.tests.factories import upload

pytestmark = pytest.mark.django_db

MANUAL = (
    "# Delivery\n\nWe deliver within the city in two working days; elsewhere it takes a week.\n"
)


@pytest.fixture
def openai_bot(bot, openai_server):
    bot.provider = "openai"
    bot.direct_threshold, bot.answer_threshold = 1.0, -1.0  # stub vectors: always generate
    bot.save()
    source = services.source_add(bot=bot, upload=upload("manual.md", MANUAL), enqueue=False)
    assert services.source_ingest(source_id=source.pk).status == Source.Status.READY
    return bot


def complete(client, raw_key, body: bytes | dict):
    return client.post(
        "/v1/chat/completions",
        body if isinstance(body, bytes) else json.dumps(body),
        content_type="application/json",
        HTTP_AUTHORIZATION=f"Bearer {raw_key}",
    )


def test_long_history_is_trimmed_oldest_first_before_the_model(
    client, openai_bot, openai_server, settings
):
    settings.CHAT_MAX_CONTEXT_TOKENS = 1500
    _, raw = api_key_create(bot=openai_bot, name="Backend")
    turns = []
    for i in range(6):  # the probe's six 2,000-character turns
        role = "user" if i % 2 == 0 else "assistant"
        turns.append({"role": role, "content": f"turn{i} " + "x" * 2000})
    question = {"role": "user", "content": "How fast is delivery?"}
    response = complete(client, raw, {"model": openai_bot.slug, "messages": [*turns, question]})
    assert response.status_code == 200, response.content[:300]

    sent = [b for b in openai_server.bodies if "messages" in b][-1]["messages"]
    history = sent[1:-1]  # between the system prompt and the question
    assert sent[-1] == question
    assert [m["content"][:5] for m in history] == ["turn4", "turn5"]  # the newest, in order
    assert sum(len(m["content"]) for m in history) + len(question["content"]) <= 1500 * 4


def test_a_question_alone_over_the_budget_still_gets_an_answer_without_history(
    client, openai_bot, openai_server, settings
):
    settings.CHAT_MAX_CONTEXT_TOKENS = 10
    _, raw = api_key_create(bot=openai_bot, name="Backend")
    messages = [
        {"role": "user", "content": "Hello"},
        {"role": "assistant", "content": "Hi!"},
        {"role": "user", "content": "How fast is delivery within the city, please?"},
    ]
    response = complete(client, raw, {"model": openai_bot.slug, "messages": messages})
    assert response.status_code == 200
    sent = [b for b in openai_server.bodies if "messages" in b][-1]["messages"]
    assert [m["role"] for m in sent] == ["system", "user"]


def test_an_oversized_body_is_refused_with_an_openai_error_before_parsing(client, bot):
    _, raw = api_key_create(bot=bot, name="Backend")
    huge = {"role": "assistant", "content": "y" * 600_000}
    body = json.dumps(
        {"model": bot.slug, "messages": [huge, {"role": "user", "content": "Hi?"}]}
    ).encode()
    response = complete(client, raw, body)
    assert response.status_code == 413
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert error["type"] == "invalid_request_error" and error["code"] == "request_too_large"
    assert "limit is 524288" in error["message"]
    # Malformed JSON of the same size gets the same answer: the size is checked first.
    assert complete(client, raw, b"{" * 600_000).status_code == 413
