"""Redis down (cache, rate limits, task queue): the public chat and /v1 keep answering, with the
rate limits counted in the web process instead (they fail open; see chat.ratelimit)."""

import json
import socket
import time

import pytest
from django.test import override_settings
from django.urls import reverse

from chat.apikeys import api_key_create
from chat.models import Message
from chat.tests.chat_helpers import add_faq

pytestmark = pytest.mark.django_db

QUESTION = "How do I reset my password?"
ANSWER = "Click Forgot password on the login page."


def closed_port_url() -> str:
    with socket.socket() as s:  # bound, never listening: connections are refused
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"redis://127.0.0.1:{port}/0"


@pytest.fixture
def redis_down():
    url = closed_port_url()
    caches = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": url,
            "KEY_PREFIX": "down",
        }
    }
    with override_settings(REDIS_URL=url, CACHES=caches):
        yield url


def ask(client, slug, question=QUESTION):
    return client.post(
        reverse("chat:ask", args=[slug]), {"message": question}, HTTP_ACCEPT="application/json"
    )


def test_public_chat_answers_while_redis_is_down(client, bot, redis_down):
    add_faq(bot, QUESTION, ANSWER)
    started = time.monotonic()
    response = ask(client, bot.slug)
    assert response.status_code == 200, response.content[:500]
    assert response.json()["message"]["text"] == ANSWER
    assert Message.objects.filter(role=Message.Role.BOT, text=ANSWER).count() == 1
    assert time.monotonic() - started < 5  # no waiting on Redis retries


def test_rate_limits_fail_open_to_a_count_in_the_process(client, bot, redis_down, settings):
    add_faq(bot, QUESTION, ANSWER)
    settings.RATE_LIMIT_VISITOR = "2/60"
    assert ask(client, bot.slug).status_code == 200
    assert ask(client, bot.slug).status_code == 200
    response = ask(client, bot.slug)
    assert response.status_code == 429  # still limited, counted in this process
    assert 1 <= int(response["Retry-After"]) <= 60
    assert "sending messages quickly" in response.json()["error"]


def test_streamed_chat_answers_while_redis_is_down(client, bot, redis_down):
    add_faq(bot, QUESTION, ANSWER)
    response = client.post(
        reverse("chat:ask", args=[bot.slug]),
        {"message": QUESTION},
        HTTP_ACCEPT="text/event-stream",
    )
    assert response.status_code == 200
    body = b"".join(response).decode()  # the test client drains the async stream
    assert "event: done" in body and ANSWER in body


def test_api_answers_while_redis_is_down(client, bot, redis_down, settings):
    add_faq(bot, QUESTION, ANSWER)
    _, raw = api_key_create(bot=bot, name="Backend")
    settings.RATE_LIMIT_API_KEY = "1/60"

    def call():
        return client.post(
            "/v1/chat/completions",
            json.dumps({"model": bot.slug, "messages": [{"role": "user", "content": QUESTION}]}),
            content_type="application/json",
            HTTP_AUTHORIZATION=f"Bearer {raw}",
        )

    response = call()
    assert response.status_code == 200, response.content[:500]
    assert response.json()["choices"][0]["message"]["content"] == ANSWER
    limited = call()
    assert limited.status_code == 429
    assert limited.json()["error"]["code"] == "rate_limit_exceeded"
