"""The OpenAI-compatible API and API keys: the official `openai` client over real HTTP against
uvicorn (ASGI) on the test database, plus error shapes and key management from the dashboard."""

import hashlib
import json
import re

import openai
import pytest
from django.test import Client
from django.urls import reverse

from chat.apikeys import api_key_create, api_key_revoke
from chat.models import ApiKey, Conversation, Message
from chat.tests.chat_helpers import add_faq

QUESTION = "How do I reset my password?"
ANSWER = "Click **Forgot password** on the login page and follow the email."


def completions(client, key, body, **extra):
    return client.post(
        "/v1/chat/completions",
        json.dumps(body) if not isinstance(body, str) else body,
        content_type="application/json",
        HTTP_AUTHORIZATION=f"Bearer {key}",
        **extra,
    )


# --- over real HTTP with the official client ---


@pytest.mark.django_db(transaction=True)
def test_openai_client_against_uvicorn(asgi_server, bot, other_bot):
    add_faq(bot, QUESTION, ANSWER, url="https://help.example.com/reset")
    _, raw = api_key_create(bot=bot, name="Backend")
    client = openai.OpenAI(base_url=asgi_server + "/v1", api_key=raw, max_retries=0, timeout=60)

    # Non-streaming: the FAQ answer, with sources in the extra field.
    reply = client.chat.completions.create(
        model="acme", messages=[{"role": "user", "content": QUESTION}]
    )
    assert reply.object == "chat.completion" and reply.model == "acme"
    assert reply.choices[0].message.content == ANSWER
    assert reply.choices[0].finish_reason == "stop"
    extra = reply.model_extra["askhandle"]
    assert extra["path"] == "direct"
    assert extra["sources"][0]["url"] == "https://help.example.com/reset"

    # Streaming: chunks that add up to the same answer, sources on the last chunk.
    pieces, last = [], None
    with client.chat.completions.create(
        model="acme",
        stream=True,
        messages=[
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": QUESTION},
        ],
    ) as stream:
        for chunk in stream:
            pieces.append(chunk.choices[0].delta.content or "")
            last = chunk
    assert "".join(pieces) == ANSWER
    assert last.choices[0].finish_reason == "stop"
    assert last.model_extra["askhandle"]["sources"][0]["title"] == QUESTION

    # Models: only this key's bot.
    assert [m.id for m in client.models.list()] == ["acme"]
    assert client.models.retrieve("acme").id == "acme"

    # Scoping: another workspace's bot and an unknown bot look the same.
    for model in ("rival", "no-such-bot"):
        with pytest.raises(openai.NotFoundError) as exc:
            client.chat.completions.create(
                model=model, messages=[{"role": "user", "content": "hi"}]
            )
        assert exc.value.status_code == 404 and exc.value.code == "model_not_found"
    with pytest.raises(openai.NotFoundError):
        client.models.retrieve("rival")

    # Bad keys.
    bad = openai.OpenAI(base_url=asgi_server + "/v1", api_key="ah_wrong", max_retries=0)
    with pytest.raises(openai.AuthenticationError) as exc:
        bad.chat.completions.create(model="acme", messages=[{"role": "user", "content": "hi"}])
    assert exc.value.code == "invalid_api_key"
    api_key_revoke(key=ApiKey.objects.get())
    with pytest.raises(openai.AuthenticationError):
        client.models.list()

    # Calls were recorded on the API channel, with path and sources.
    assert Conversation.objects.filter(bot=bot, channel="api").count() == 2
    answers = Message.objects.filter(conversation__channel="api", role="assistant")
    assert {m.path for m in answers} == {"direct"} and all(m.sources for m in answers)
    assert not Conversation.objects.filter(bot=other_bot).exists()


@pytest.mark.django_db(transaction=True)
def test_answers_stream_over_sse_through_uvicorn(asgi_server, bot):
    """The public chat's SSE endpoint served by uvicorn, read with a real HTTP client."""
    import httpx

    add_faq(bot, QUESTION, ANSWER)
    with httpx.Client(base_url=asgi_server, timeout=60) as http:
        page = http.get("/c/acme/")
        token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text).group(1)
        with http.stream(
            "POST",
            "/c/acme/ask/",
            data={"message": QUESTION},
            headers={
                "Accept": "text/event-stream",
                "X-CSRFToken": token,
                "Referer": asgi_server + "/c/acme/",
            },
        ) as response:
            assert response.status_code == 200
            assert response.headers["content-type"].startswith("text/event-stream")
            body = "".join(response.iter_text())
        assert "event: token" in body and body.rstrip().split("\n\n")[-1].startswith("event: done")
        assert http.get("/c/acme/").text.count("Forgot password") == 1  # history after reload


# --- errors and scoping through the Django test client ---


@pytest.mark.django_db
def test_bad_bodies_get_openai_shaped_400s(client, bot):
    _, raw = api_key_create(bot=bot, name="k")
    cases = [
        ("{not json", None),
        ({"messages": [{"role": "user", "content": "hi"}]}, "model"),
        ({"model": "acme"}, "messages"),
        ({"model": "acme", "messages": []}, "messages"),
        ({"model": "acme", "messages": [{"role": "wizard", "content": "hi"}]}, "messages.[0]"),
        ({"model": "acme", "messages": [{"role": "user", "content": 42}]}, "messages.[0]"),
        ({"model": "acme", "messages": [{"role": "assistant", "content": "hi"}]}, "messages"),
        (
            {"model": "acme", "messages": [{"role": "user", "content": "hi"}], "stream": "yes"},
            "stream",
        ),
    ]
    for body, param in cases:
        response = completions(client, raw, body)
        assert response.status_code == 400, body
        error = response.json()["error"]
        assert set(error) == {"message", "type", "param", "code"}
        assert (
            error["type"] == "invalid_request_error"
            and error["param"] == param
            and error["message"]
        )
    assert not Message.objects.exists()


@pytest.mark.django_db
def test_content_parts_and_history_are_accepted(client, bot):
    add_faq(bot, QUESTION, ANSWER)
    _, raw = api_key_create(bot=bot, name="k")
    body = {
        "model": "acme",
        "messages": [
            {"role": "user", "content": "Hello"},
            {"role": "assistant", "content": "Hi! How can I help?"},
            {"role": "user", "content": [{"type": "text", "text": QUESTION}]},
        ],
    }
    response = completions(client, raw, body)
    assert response.status_code == 200
    assert response.json()["choices"][0]["message"]["content"] == ANSWER


@pytest.mark.django_db
def test_the_bot_comes_with_the_model_that_serves_it_in_the_key_lookup(client, bot):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    add_faq(bot, QUESTION, ANSWER)
    _, raw = api_key_create(bot=bot, name="k")
    body = {"model": "acme", "messages": [{"role": "user", "content": QUESTION}]}
    with CaptureQueriesContext(connection) as queries:
        response = completions(client, raw, body)
    assert response.json()["choices"][0]["message"]["content"] == ANSWER
    reads = [q["sql"] for q in queries if q["sql"].startswith("SELECT")]
    assert any('FROM "bots_apikey"' in sql for sql in reads)
    assert not any('FROM "knowledge_embeddingstate"' in sql for sql in reads), reads


@pytest.mark.django_db
def test_too_long_question_is_400(client, bot, settings):
    settings.CHAT_MAX_MESSAGE_CHARS = 10
    _, raw = api_key_create(bot=bot, name="k")
    response = completions(
        client, raw, {"model": "acme", "messages": [{"role": "user", "content": "x" * 11}]}
    )
    assert (
        response.status_code == 400
        and response.json()["error"]["code"] == "string_above_max_length"
    )


@pytest.mark.django_db
def test_missing_or_malformed_authorization_is_401(client, bot):
    body = json.dumps({"model": "acme", "messages": [{"role": "user", "content": "hi"}]})
    for header in ({}, {"HTTP_AUTHORIZATION": "Basic abc"}, {"HTTP_AUTHORIZATION": "Bearer "}):
        response = client.post(
            "/v1/chat/completions", body, content_type="application/json", **header
        )
        assert response.status_code == 401 and response.json()["error"]["code"] == "invalid_api_key"
    assert client.get("/v1/models").status_code == 401


@pytest.mark.django_db
def test_key_of_bot_a_cannot_reach_or_list_bot_b(client, bot, other_bot):
    _, raw = api_key_create(bot=bot, name="k")
    response = completions(
        client, raw, {"model": other_bot.slug, "messages": [{"role": "user", "content": "hi"}]}
    )
    assert response.status_code == 404 and response.json()["error"]["code"] == "model_not_found"
    listed = client.get("/v1/models", HTTP_AUTHORIZATION=f"Bearer {raw}").json()
    assert [m["id"] for m in listed["data"]] == [bot.slug]


@pytest.mark.django_db
def test_api_is_csrf_exempt_but_key_authenticated(bot):
    add_faq(bot, QUESTION, ANSWER)
    _, raw = api_key_create(bot=bot, name="k")
    csrf_client = Client(enforce_csrf_checks=True)
    response = completions(
        csrf_client, raw, {"model": "acme", "messages": [{"role": "user", "content": QUESTION}]}
    )
    assert response.status_code == 200


@pytest.mark.django_db
def test_wrong_method_is_405(client, bot):
    _, raw = api_key_create(bot=bot, name="k")
    response = client.get("/v1/chat/completions", HTTP_AUTHORIZATION=f"Bearer {raw}")
    assert response.status_code == 405 and "error" in response.json()


# --- API keys in the dashboard ---


@pytest.mark.django_db
def test_key_is_shown_once_and_stored_hashed(owner_client, bot):
    response = owner_client.post(
        reverse("chat:api_key_create", args=[bot.pk]), {"name": "Website backend"}
    )
    assert response.status_code == 200
    raw = re.search(r'id="new-key">(ah_[^<]+)<', response.content.decode()).group(1)
    key = ApiKey.objects.get()
    assert key.bot == bot and key.name == "Website backend"
    assert key.key_hash == hashlib.sha256(raw.encode()).hexdigest() and raw.startswith(key.prefix)
    assert raw not in json.dumps(list(ApiKey.objects.values()), default=str)
    page = owner_client.get(reverse("chat:share", args=[bot.pk])).content.decode()
    assert raw not in page and key.prefix in page  # shown once; afterwards only the prefix


@pytest.mark.django_db
def test_revoking_from_the_share_page_returns_the_fragment(owner_client, bot):
    key, raw = api_key_create(bot=bot, name="Old")
    response = owner_client.post(
        reverse("chat:api_key_revoke", args=[bot.pk, key.pk]), HTTP_HX_REQUEST="true"
    )
    assert response.status_code == 200
    html = response.content.decode()
    assert "<html" not in html and 'id="keys"' in html and "revoked" in html
    key.refresh_from_db()
    assert key.revoked_at is not None
    assert Client().get("/v1/models", HTTP_AUTHORIZATION=f"Bearer {raw}").status_code == 401


@pytest.mark.django_db
def test_key_creation_via_htmx_returns_only_the_fragment(owner_client, bot):
    response = owner_client.post(
        reverse("chat:api_key_create", args=[bot.pk]), {"name": "X"}, HTTP_HX_REQUEST="true"
    )
    html = response.content.decode()
    assert "<html" not in html and 'id="new-key"' in html
    response = owner_client.post(
        reverse("chat:api_key_create", args=[bot.pk]), {"name": ""}, HTTP_HX_REQUEST="true"
    )
    assert response.status_code == 422 and "This field is required" in response.content.decode()


@pytest.mark.django_db
def test_another_tenant_cannot_create_list_or_revoke_keys(other_client, bot):
    key, _ = api_key_create(bot=bot, name="Mine")
    assert other_client.get(reverse("chat:share", args=[bot.pk])).status_code == 404
    assert (
        other_client.post(reverse("chat:api_key_create", args=[bot.pk]), {"name": "x"}).status_code
        == 404
    )
    assert (
        other_client.post(reverse("chat:api_key_revoke", args=[bot.pk, key.pk])).status_code == 404
    )
    key.refresh_from_db()
    assert key.revoked_at is None and ApiKey.objects.count() == 1


@pytest.mark.django_db
def test_revoke_url_with_a_key_of_another_bot_is_404(owner_client, bot, workspace):
    from bots.services import bot_create

    second = bot_create(workspace=workspace, name="Second", slug="second")
    key, _ = api_key_create(bot=second, name="k")
    assert (
        owner_client.post(reverse("chat:api_key_revoke", args=[bot.pk, key.pk])).status_code == 404
    )


@pytest.mark.django_db
@pytest.mark.filterwarnings("ignore:StreamingHttpResponse must consume")
def test_streamed_generation_arrives_in_chunks_then_done(client, bot, openai_server):
    from chat.tests.chat_helpers import add_document_chunk

    bot.provider = "openai"
    bot.save()
    add_document_chunk(
        bot,
        "Every bicycle frame has a lifetime warranty. Components are covered for two years.",
        title="Warranty",
        url="https://example.com/warranty",
        embed_as="What is the warranty?",
    )
    openai_server.replies.append(
        "Every frame has a lifetime warranty [1]. Components are covered for two years [1]."
    )
    _, raw = api_key_create(bot=bot, name="k")
    response = completions(
        client,
        raw,
        {
            "model": "acme",
            "stream": True,
            "messages": [{"role": "user", "content": "What is the warranty?"}],
        },
    )
    assert response.status_code == 200 and response["Content-Type"].startswith("text/event-stream")
    blocks = b"".join(response).decode().strip().split("\n\n")
    assert blocks[-1] == "data: [DONE]"
    chunks = [json.loads(b[len("data: ") :]) for b in blocks[:-1]]
    assert all(c["object"] == "chat.completion.chunk" and c["model"] == "acme" for c in chunks)
    assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
    text = "".join(c["choices"][0]["delta"].get("content", "") for c in chunks)
    assert text.strip() == (
        "Every frame has a lifetime warranty [1]. Components are covered for two years [1]."
    )
    # The role, one chunk per checked sentence, then the stop.
    assert len(chunks) == 4 and chunks[-1]["choices"][0]["finish_reason"] == "stop"
    assert chunks[-1]["askhandle"]["path"] == "generated"
    assert chunks[-1]["askhandle"]["sources"][0]["url"] == "https://example.com/warranty"
