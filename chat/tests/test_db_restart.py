"""PostgreSQL goes away under a running site (issue 14). The embedded server is shared with other
test runs, so it is not restarted here: every connection to this run's test database is
terminated with pg_terminate_backend instead, which is what a restart does to a client (the
next query on a kept connection fails). The site must reconnect by itself and lose no
acknowledged write. (Ingestion: knowledge/tests/test_db_restart.py.)"""

import httpx
import pytest

from chat.apikeys import api_key_create
from chat.models import Message
from chat.tests.chat_helpers import add_faq
from conftest import terminate_other_connections

pytestmark = pytest.mark.django_db(transaction=True)

QUESTION = "How do I reset my password?"
ANSWER = "Use the Forgot password link on the login page."


def ask(base: str, key: str) -> httpx.Response:
    return httpx.post(
        f"{base}/v1/chat/completions",
        headers={"Authorization": f"Bearer {key}"},
        json={"model": "acme", "messages": [{"role": "user", "content": QUESTION}]},
        timeout=60,
    )


def test_chat_answers_at_once_after_its_database_connections_are_cut(asgi_server, bot):
    add_faq(bot, QUESTION, ANSWER)
    _, key = api_key_create(bot=bot, name="site")
    for _ in range(3):  # the answer pool's threads now hold kept connections
        first = ask(asgi_server, key)
        assert first.status_code == 200, first.text

    assert terminate_other_connections() >= 1

    after = [ask(asgi_server, key) for _ in range(3)]
    assert [r.status_code for r in after] == [200, 200, 200], after[0].text
    assert after[0].json()["choices"][0]["message"]["content"] == ANSWER
    # Every answered turn was recorded: question and reply, before and after the cut.
    assert Message.objects.filter(conversation__bot=bot).count() == 2 * 6
