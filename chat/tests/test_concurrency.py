"""Under load: a slow answer holds nobody else up, questions are embedded in micro-batches, and a
full queue answers 503 with Retry-After (never an unbounded pile-up)."""

from __future__ import annotations

import threading
import time

import httpx
import openai
import pytest
from django.conf import settings
from django.test import Client

from chat.apikeys import api_key_create
from chat.tests.chat_helpers import add_document_chunk, add_faq
from conftest import wait_for

WARRANTY = "Every bicycle frame has a lifetime warranty. Components are covered for two years."
REPLY = "Every frame has a lifetime warranty [1]. Components are covered for two years [1]."


def _slow_stream(base: str, key: str, out: dict) -> None:
    client = openai.OpenAI(base_url=base + "/v1", api_key=key, max_retries=0, timeout=60)
    started = time.perf_counter()
    try:
        with client.chat.completions.create(
            model="acme",
            stream=True,
            messages=[{"role": "user", "content": "What is the warranty?"}],
        ) as stream:
            out["text"] = "".join(chunk.choices[0].delta.content or "" for chunk in stream)
    except Exception as exc:  # shown by the waiting test
        out["error"] = repr(exc)
        raise
    out["seconds"] = time.perf_counter() - started


@pytest.mark.django_db(transaction=True)
def test_dashboard_and_other_customers_answer_while_a_slow_answer_streams(
    openai_server, asgi_server, bot, user
):
    bot.provider = "openai"
    bot.save()
    add_document_chunk(bot, WARRANTY, title="Warranty", embed_as="What is the warranty?")
    add_faq(bot, "How do I reset my password?", "Click Forgot password.")
    _, key = api_key_create(bot=bot, name="k")
    openai_server.replies.append(REPLY)
    openai_server.chunk_delay = 0.5  # 13 words: about 6 s of writing
    browser = Client()
    browser.force_login(user)
    session = browser.cookies[settings.SESSION_COOKIE_NAME].value

    slow: dict = {}
    writer = threading.Thread(target=_slow_stream, args=(asgi_server, key, slow))
    writer.start()
    # Well inside the model's writing: its first words are out (the second comes 0.5 s after
    # the first), the rest of the reply still to come.
    wait_for(
        lambda: openai_server.streamed_words >= 2 or not writer.is_alive(),
        30,
        "the model to be writing the slow answer",
    )
    assert writer.is_alive(), f"no slow answer: {slow}"

    with httpx.Client(base_url=asgi_server, timeout=30) as http:
        http.cookies.set(settings.SESSION_COOKIE_NAME, session)
        for url in ("/bots/", f"/bots/{bot.pk}/"):
            started = time.perf_counter()
            page = http.get(url)
            elapsed = time.perf_counter() - started
            assert page.status_code == 200 and "Acme Help" in page.text
            assert elapsed < 2, f"{url} took {elapsed:.1f} s behind a slow answer"
        started = time.perf_counter()
        direct = http.post(
            "/v1/chat/completions",
            headers={"Authorization": f"Bearer {key}"},
            json={
                "model": "acme",
                "messages": [{"role": "user", "content": "How do I reset my password?"}],
            },
        )
        elapsed = time.perf_counter() - started
        assert direct.status_code == 200 and direct.json()["askhandle"]["path"] == "direct"
        assert elapsed < 2, f"another customer's answer took {elapsed:.1f} s"
    assert writer.is_alive(), "the slow answer was over before the other requests were timed"

    writer.join(timeout=60)
    assert slow["text"].strip() == REPLY and slow["seconds"] >= 5


@pytest.fixture
def server_with(transactional_db, tmp_path):
    """start(**env): uvicorn on the test database with extra settings; stopped after the test."""
    from askhandle.devtools import start_uvicorn, stop_process
    from conftest import child_env

    procs = []

    def start(**env):
        proc, base = start_uvicorn({**child_env(), **env}, tmp_path / f"uvicorn{len(procs)}.log")
        procs.append(proc)
        return base

    yield start
    for proc in procs:
        stop_process(proc)
    for log in sorted(tmp_path.glob("uvicorn*.log")):  # shown when the test fails
        print(f"--- {log.name} ---\n{log.read_text()[-6000:]}")


def _ask_api(http: httpx.Client, key: str, question: str) -> httpx.Response:
    return http.post(
        "/v1/chat/completions",
        headers={"Authorization": f"Bearer {key}"},
        json={"model": "acme", "messages": [{"role": "user", "content": question}]},
    )


@pytest.mark.django_db(transaction=True)
def test_two_concurrent_questions_are_embedded_in_one_call(openai_server, server_with, bot):
    bot.provider = "openai"
    bot.save()
    add_faq(bot, "How do I reset my password?", "Click Forgot password.")
    add_faq(bot, "Do you ship abroad?", "Yes, to 40 countries.")
    _, key = api_key_create(bot=bot, name="k")
    base = server_with(ASKHANDLE_EMBED_BATCH_WAIT_MS="500", ASKHANDLE_QUERY_EMBED_CACHE="0")
    openai_server.bodies.clear()

    replies: dict = {}

    def ask(question):
        with httpx.Client(base_url=base, timeout=30) as http:
            replies[question] = _ask_api(http, key, question)

    askers = [
        threading.Thread(target=ask, args=(q,))
        for q in ("How do I reset my password?", "Do you ship abroad?")
    ]
    for t in askers:
        t.start()
    for t in askers:
        t.join(timeout=60)

    assert {q: r.json()["choices"][0]["message"]["content"] for q, r in replies.items()} == {
        "How do I reset my password?": "Click Forgot password.",
        "Do you ship abroad?": "Yes, to 40 countries.",
    }
    embeddings = [b for b in openai_server.bodies if "input" in b]
    assert [sorted(b["input"]) for b in embeddings] == [
        ["Do you ship abroad?", "How do I reset my password?"]
    ]


@pytest.mark.django_db(transaction=True)
def test_questions_waiting_for_their_batch_hold_no_answer_thread(openai_server, server_with, bot):
    """One answer thread, three customers at once (the public page and /v1), and a batch that
    waits 1.5 s for company: the three questions are embedded in one call. A question that held
    its answer thread while it waited would have been embedded alone, the others queued behind
    the thread."""
    bot.provider = "openai"
    bot.save()
    add_faq(bot, "How do I reset my password?", "Click Forgot password.")
    add_faq(bot, "Do you ship abroad?", "Yes, to 40 countries.")
    add_faq(bot, "What is your return policy?", "Unused items within 30 days.")
    _, key = api_key_create(bot=bot, name="k")
    base = server_with(
        ASKHANDLE_ANSWER_THREADS="1",
        ASKHANDLE_EMBED_BATCH_WAIT_MS="1500",
        ASKHANDLE_QUERY_EMBED_CACHE="0",
    )
    http, headers = _public_chat(base, bot.slug)  # the page loads before the clock starts
    openai_server.bodies.clear()
    replies: dict = {}

    def ask_api(question):
        with httpx.Client(base_url=base, timeout=30) as client:
            reply = _ask_api(client, key, question)
            replies[question] = reply.json()["choices"][0]["message"]["content"]

    def ask_page(question):
        reply = http.post(
            f"/c/{bot.slug}/ask/",
            data={"message": question},
            headers={**headers, "Accept": "application/json"},
        )
        replies[question] = reply.json()["message"]["text"]

    askers = [
        threading.Thread(target=ask_api, args=("How do I reset my password?",)),
        threading.Thread(target=ask_api, args=("Do you ship abroad?",)),
        threading.Thread(target=ask_page, args=("What is your return policy?",)),
    ]
    for t in askers:
        t.start()
    for t in askers:
        t.join(timeout=60)

    assert replies == {
        "How do I reset my password?": "Click Forgot password.",
        "Do you ship abroad?": "Yes, to 40 countries.",
        "What is your return policy?": "Unused items within 30 days.",
    }
    embeddings = [sorted(b["input"]) for b in openai_server.bodies if "input" in b]
    assert embeddings == [
        ["Do you ship abroad?", "How do I reset my password?", "What is your return policy?"]
    ]


@pytest.mark.django_db(transaction=True)
def test_a_full_answer_queue_gets_503_with_retry_after(openai_server, server_with, bot):
    bot.provider = "openai"
    bot.save()
    add_document_chunk(bot, WARRANTY, title="Warranty", embed_as="What is the warranty?")
    add_faq(bot, "How do I reset my password?", "Click Forgot password.")
    _, key = api_key_create(bot=bot, name="k")
    base = server_with(ASKHANDLE_ANSWER_THREADS="1", ASKHANDLE_ANSWER_QUEUE="0")
    openai_server.replies.append(REPLY)
    openai_server.chunk_delay = 0.3

    slow: dict = {}
    writer = threading.Thread(target=_slow_stream, args=(base, key, slow))
    writer.start()
    deadline = time.monotonic() + 30
    while not any(p.endswith("/chat/completions") for p in openai_server.requests):
        assert time.monotonic() < deadline and writer.is_alive(), f"no slow answer: {slow}"
        time.sleep(0.05)

    with httpx.Client(base_url=base, timeout=30) as http:
        busy = _ask_api(http, key, "How do I reset my password?")
        assert busy.status_code == 503 and int(busy.headers["Retry-After"]) >= 1
        assert busy.json()["error"]["type"] == "server_error"
        assert busy.json()["error"]["code"] == "overloaded"

        page = http.get("/c/acme/")
        token = page.text.split('name="csrfmiddlewaretoken" value="')[1].split('"')[0]
        headers = {"X-CSRFToken": token, "Referer": base + "/c/acme/", "Accept": "application/json"}
        public = http.post("/c/acme/ask/", data={"message": "Hi"}, headers=headers)
        assert public.status_code == 503 and int(public.headers["Retry-After"]) >= 1
        assert "busy" in public.json()["error"] and public.json()["retry_after"] >= 1
        assert writer.is_alive()

        writer.join(timeout=60)
        assert slow["text"].strip() == REPLY
        # The slow answer's place is free again: the queue never stays full.
        again = _ask_api(http, key, "How do I reset my password?")
        assert again.status_code == 200 and again.json()["askhandle"]["path"] == "direct"


def _public_chat(base: str, slug: str) -> tuple[httpx.Client, dict]:
    http = httpx.Client(base_url=base, timeout=60)
    page = http.get(f"/c/{slug}/")
    token = http.cookies[settings.CSRF_COOKIE_NAME]
    assert page.status_code == 200
    return http, {"X-CSRFToken": token, "Referer": f"{base}/c/{slug}/"}


@pytest.mark.django_db(transaction=True)
def test_customers_waiting_on_slow_answers_do_not_hold_the_servers_database_connections(
    openai_server, server_with, bot
):
    """The web server pools its connections (2 here). Three customers' answers stream slowly on
    the public page at once; a fourth customer still gets a direct answer at once, and all three
    slow ones finish. A connection held for the length of an answer (the page's language lookup
    used to keep one on the request's thread) would leave the fourth waiting, then failing."""
    bot.provider = "openai"
    bot.save()
    add_document_chunk(bot, WARRANTY, title="Warranty", embed_as="What is the warranty?")
    add_faq(bot, "How do I reset my password?", "Click Forgot password.")
    openai_server.replies.extend([REPLY] * 3)
    openai_server.chunk_delay = 0.3  # about 4 s of writing each
    base = server_with(DATABASE_POOL_MAX_SIZE="2", DATABASE_POOL_TIMEOUT="3")

    results: list = []

    def slow_customer() -> None:
        http, headers = _public_chat(base, bot.slug)
        with http.stream(
            "POST",
            f"/c/{bot.slug}/ask/",
            data={"message": "What is the warranty?"},
            headers={**headers, "Accept": "text/event-stream"},
        ) as response:
            results.append((response.status_code, "".join(response.iter_text())))

    writers = [threading.Thread(target=slow_customer) for _ in range(3)]
    for writer in writers:
        writer.start()
    deadline = time.monotonic() + 30
    while sum(p.endswith("/chat/completions") for p in openai_server.requests) < 3:
        assert time.monotonic() < deadline, (
            f"the slow answers did not start: {[body[-300:] for _, body in results]}"
        )
        time.sleep(0.05)

    http, headers = _public_chat(base, bot.slug)
    started = time.perf_counter()
    direct = http.post(
        f"/c/{bot.slug}/ask/",
        data={"message": "How do I reset my password?"},
        headers={**headers, "Accept": "application/json"},
    )
    elapsed = time.perf_counter() - started
    assert direct.status_code == 200, direct.text[:300]
    assert direct.json()["message"]["text"] == "Click Forgot password."
    assert elapsed < 2.5, f"the fourth customer waited {elapsed:.1f} s"
    assert any(w.is_alive() for w in writers), "the slow answers ended before the fourth question"
    for writer in writers:
        writer.join(timeout=60)
    assert [status for status, _ in results] == [200, 200, 200]
    assert all("lifetime warranty" in body and "event: done" in body for _, body in results)
