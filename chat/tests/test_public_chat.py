"""The public chat page: streaming answers, history across reloads, ratings, hand-off, safety."""

import json
import re

import pytest
from django.core import mail
from django.core.signing import TimestampSigner
from django.test import Client
from django.urls import reverse

from chat.apikeys import api_key_create
from chat.models import Conversation, Message, Widget
from chat.tests.chat_helpers import add_document_chunk, add_faq
from chat.visitors import TOKEN_SALT

pytestmark = [
    pytest.mark.django_db,
    pytest.mark.filterwarnings("ignore:StreamingHttpResponse must consume"),
]

QUESTION = "How long does shipping take?"
ANSWER = (
    "Orders ship in **3-5 business days**. See [our shipping page](https://example.com/shipping)."
)


@pytest.fixture
def faq_bot(bot):
    add_faq(bot, QUESTION, ANSWER, url="https://example.com/shipping")
    return bot


def events(response) -> list[tuple[str, dict]]:
    body = b"".join(response).decode()
    out = []
    for block in body.strip().split("\n\n"):
        fields = dict(line.split(": ", 1) for line in block.splitlines())
        out.append((fields["event"], json.loads(fields["data"])))
    return out


def public_id(token: str) -> str:
    """The public_id inside the signed conversation token the page keeps."""
    return TimestampSigner(salt=TOKEN_SALT).unsign(token)


def ask(client, slug, text, accept="text/event-stream", **extra):
    return client.post(
        reverse("chat:ask", args=[slug]), {"message": text, **extra}, HTTP_ACCEPT=accept
    )


def test_page_shows_name_greeting_and_colour(client, bot):
    bot.greeting = "Welcome to Acme support!"
    bot.primary_colour = "#123abc"
    bot.save()
    response = client.get(reverse("chat:page", args=[bot.slug]))
    assert response.status_code == 200
    html = response.content.decode()
    assert "Acme Help" in html and "Welcome to Acme support!" in html
    assert "--brand: #123abc" in html
    assert 'name="viewport"' in html
    assert 'class="topbar"' not in html  # no dashboard chrome


def test_unknown_bot_is_404(client, db):
    assert client.get(reverse("chat:page", args=["nope"])).status_code == 404
    assert ask(client, "nope", "hi").status_code == 404


def test_answer_streams_tokens_then_done_and_messages_are_recorded(client, faq_bot):
    response = ask(client, faq_bot.slug, QUESTION)
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/event-stream")
    stream = events(response)
    kinds = [kind for kind, _ in stream]
    assert kinds[0] == "start" and kinds[-1] == "done" and "token" in kinds
    assert "".join(d["text"] for k, d in stream if k == "token") == ANSWER
    done = stream[-1][1]
    assert done["message"]["path"] == "direct"
    assert "<strong>3-5 business days</strong>" in done["message"]["html"]
    assert done["message"]["sources"] == [
        {"title": QUESTION, "url": "https://example.com/shipping"}
    ]
    assert f'id="m{done["message"]["id"]}"' in done["fragment"]

    conversation = Conversation.objects.get(public_id=public_id(stream[0][1]["conversation"]))
    user_msg, bot_msg = conversation.messages.all()
    assert (user_msg.role, user_msg.text) == ("user", QUESTION)
    assert bot_msg.role == "assistant" and bot_msg.text == ANSWER and bot_msg.path == "direct"
    assert bot_msg.score == pytest.approx(1.0, abs=1e-3)
    assert bot_msg.latency_ms is not None and bot_msg.latency_ms >= 0
    assert bot_msg.sources[0]["url"] == "https://example.com/shipping"
    assert bot_msg.sources[0]["faq_id"] is not None


def test_conversation_survives_a_reload(client, faq_bot):
    ask(client, faq_bot.slug, QUESTION, accept="application/json")
    ask(client, faq_bot.slug, "And do you ship abroad?", accept="application/json")
    assert Conversation.objects.count() == 1  # the cookie kept the same conversation
    html = client.get(reverse("chat:page", args=[faq_bot.slug])).content.decode()
    assert QUESTION in html and "And do you ship abroad?" in html
    assert "<strong>3-5 business days</strong>" in html
    # A new visitor (no cookie) starts fresh: the bot's page with its greeting, no history.
    fresh = Client().get(reverse("chat:page", args=[faq_bot.slug]))
    assert fresh.status_code == 200
    assert faq_bot.name in fresh.content.decode() and faq_bot.greeting in fresh.content.decode()
    assert QUESTION not in fresh.content.decode()


def test_conversation_id_from_local_storage_restores_it_without_cookie(client, faq_bot):
    data = ask(client, faq_bot.slug, QUESTION, accept="application/json").json()
    stranger = Client()  # e.g. a third-party iframe whose cookies are blocked
    ask(
        stranger,
        faq_bot.slug,
        "Second question",
        accept="application/json",
        conversation=data["conversation"],
    )
    conversation = Conversation.objects.get()
    assert conversation.messages.filter(role="user").count() == 2


def test_cookie_of_one_bot_does_not_open_another_bots_conversation(client, faq_bot, other_bot):
    data = ask(client, faq_bot.slug, QUESTION, accept="application/json").json()
    assert data["message"]["path"] == "direct"
    # The cookie opens the conversation on its own bot's page...
    own = client.get(reverse("chat:page", args=[faq_bot.slug]))
    assert own.status_code == 200 and QUESTION in own.content.decode()
    # ...and the other bot's page, with the same cookies, is that bot's page with no history.
    response = client.get(reverse("chat:page", args=[other_bot.slug]))
    assert response.status_code == 200
    html = response.content.decode()
    assert other_bot.name in html and other_bot.greeting in html
    assert faq_bot.name not in html
    assert QUESTION not in html and "3-5 business days" not in html
    assert not Conversation.objects.filter(bot=other_bot).exists()


def test_unanswerable_question_gets_the_fallback(client, bot):
    data = ask(
        client, bot.slug, "What is the airspeed of a swallow?", accept="application/json"
    ).json()
    assert data["message"]["path"] == "fallback"
    assert data["message"]["text"] == bot.fallback_message


def test_form_post_without_javascript_redirects_back_to_the_page(client, faq_bot):
    response = ask(client, faq_bot.slug, QUESTION, accept="text/html", embed="1")
    assert response.status_code == 303
    assert response.url.startswith(reverse("chat:page", args=[faq_bot.slug]) + "?embed=1")
    page = client.get(response.url)
    assert "3-5 business days" in page.content.decode()
    assert Conversation.objects.get().channel == "widget"


def test_too_long_message_is_refused_with_a_clear_error(client, bot, settings):
    settings.CHAT_MAX_MESSAGE_CHARS = 50
    response = ask(client, bot.slug, "x" * 51, accept="application/json")
    assert response.status_code == 400
    assert response.json()["error"] == (
        "Your message is 51 characters long; the limit is 50. Please shorten it."
    )
    page = ask(client, bot.slug, "x" * 51, accept="text/html")
    assert page.status_code == 400 and b"the limit is 50" in page.content
    assert not Message.objects.exists()


def test_empty_message_is_refused(client, bot):
    response = ask(client, bot.slug, "   ", accept="application/json")
    assert response.status_code == 400 and "Type a question" in response.json()["error"]


XSS_ANSWER = (
    'Hello <script>alert("faq")</script><img src="https://tracker.example/p.gif" onerror="alert(2)">'
    '<a href="javascript:alert(3)" onclick="alert(4)" style="color:red">click</a>'
    '<iframe src="https://evil.example"></iframe> ![pixel](https://tracker.example/x.png)'
)


def _assert_no_active_content(html: str):
    lowered = html.lower()
    for needle in (
        "<script",
        "<img",
        "<iframe",
        "onerror",
        "onclick",
        "javascript:",
        'style="color',
    ):
        assert needle not in lowered, needle


def test_xss_in_faq_answer_is_sanitized_on_the_page_and_in_the_stream(client, bot):
    add_faq(bot, "Say hello", XSS_ANSWER)
    response = ask(client, bot.slug, "Say hello")
    raw = b"".join(response).decode()
    assert "<script" not in raw.lower() and "<img" not in raw.lower()  # escaped as \u003c in JSON
    done = json.loads(raw.strip().split("\n\n")[-1].split("data: ", 1)[1])
    _assert_no_active_content(done["message"]["html"])
    _assert_no_active_content(done["fragment"])
    assert "click" in done["message"]["html"]
    page = client.get(reverse("chat:page", args=[bot.slug])).content.decode()
    log = page.split('id="chat-log"', 1)[1].split("</ol>", 1)[0]
    _assert_no_active_content(log)
    assert "Hello" in log


def test_xss_in_customer_message_is_escaped(client, bot):
    payload = '<script>alert("me")</script><img src=x onerror=alert(1)>'
    ask(client, bot.slug, payload, accept="application/json")
    page = client.get(reverse("chat:page", args=[bot.slug])).content.decode()
    log = page.split('id="chat-log"', 1)[1].split("</ol>", 1)[0]
    assert (
        "&lt;script&gt;alert(&quot;me&quot;)&lt;/script&gt;&lt;img src=x onerror=alert(1)&gt;"
        in log
    )
    assert "<script" not in log and "<img" not in log


def test_links_in_answers_open_safely(client, faq_bot):
    data = ask(client, faq_bot.slug, QUESTION, accept="application/json").json()
    link = re.search(r"<a [^>]*>our shipping page</a>", data["message"]["html"]).group(0)
    assert 'href="https://example.com/shipping"' in link
    assert 'rel="nofollow noopener"' in link and 'target="_blank"' in link


def test_no_owner_data_reaches_the_public_page_or_json(client, faq_bot, user):
    faq_bot.instructions = "SECRET-PERSONA-instructions"
    faq_bot.direct_threshold = 0.8123
    faq_bot.save()
    key, raw = api_key_create(bot=faq_bot, name="Backend")
    answered = ask(client, faq_bot.slug, QUESTION, accept="application/json")
    shown = client.get(reverse("chat:page", args=[faq_bot.slug]))
    config = client.get(reverse("chat:widget_config", args=[faq_bot.slug]))
    # What a customer is meant to get: the answer, the bot's page with the conversation, the
    # widget's settings.
    assert answered.status_code == shown.status_code == config.status_code == 200
    assert answered.json()["message"]["text"] == ANSWER
    data, page, widget = (r.content.decode() for r in (answered, shown, config))
    assert faq_bot.name in page and QUESTION in page and "3-5 business days" in page
    assert config.json()["name"] == faq_bot.name
    for text in (page, data, widget):
        assert user.email not in text
        assert "Acme Inc" not in text  # the workspace name
        assert "SECRET-PERSONA" not in text
        assert "0.8123" not in text and "0.81" not in text
        assert raw not in text and key.prefix not in text and key.key_hash not in text


def test_rating_an_answer(client, faq_bot):
    data = ask(client, faq_bot.slug, QUESTION, accept="application/json").json()
    url = reverse("chat:rate", args=[faq_bot.slug, data["message"]["id"]])
    response = client.post(url, {"value": "down"}, HTTP_ACCEPT="application/json")
    assert response.status_code == 200 and response.json() == {"rating": -1}
    assert Message.objects.get(pk=data["message"]["id"]).rating == -1
    client.post(url, {"value": "up"})  # rating again replaces it (no-JS form post)
    assert Message.objects.get(pk=data["message"]["id"]).rating == 1
    assert client.post(url, {"value": "meh"}, HTTP_ACCEPT="application/json").status_code == 400


def test_cannot_rate_someone_elses_answer(client, faq_bot):
    data = ask(client, faq_bot.slug, QUESTION, accept="application/json").json()
    url = reverse("chat:rate", args=[faq_bot.slug, data["message"]["id"]])
    assert Client().post(url, {"value": "down"}, HTTP_ACCEPT="application/json").status_code == 404
    user_msg = Message.objects.get(role="user")
    own_user_msg = reverse("chat:rate", args=[faq_bot.slug, user_msg.pk])
    assert client.post(own_user_msg, {"value": "up"}).status_code == 404
    assert Message.objects.get(pk=data["message"]["id"]).rating is None
    # The same request from the visitor who was answered is taken.
    own = client.post(url, {"value": "down"}, HTTP_ACCEPT="application/json")
    assert own.status_code == 200 and own.json() == {"rating": -1}


# --- Another visitor's conversation (issue 23, finding 1) -----------------------------------------
# The page keeps a signed token, not the bare public_id: owners see public_ids (dashboard
# addresses, the hand-off e-mail), and a bare id used to open the conversation to anyone.


@pytest.mark.parametrize("embed", ["", "1"])  # the chat page, and the widget's frame
def test_asking_with_someone_elses_conversation_id_starts_a_new_conversation(
    client, faq_bot, embed
):
    ask(client, faq_bot.slug, QUESTION, accept="application/json")
    victim = Conversation.objects.get()
    attacker = Client()
    data = ask(
        attacker,
        faq_bot.slug,
        "Do you sell gift cards?",
        accept="application/json",
        conversation=str(victim.public_id),
        embed=embed,
    ).json()
    assert data["message"]["path"] == "fallback" and data["message"]["text"]
    assert list(victim.messages.values_list("text", flat=True)) == [QUESTION, ANSWER]
    theirs = Conversation.objects.exclude(pk=victim.pk).get()
    assert public_id(data["conversation"]) == str(theirs.public_id)
    assert theirs.channel == ("widget" if embed else "web")
    assert theirs.messages.filter(role="user").get().text == "Do you sell gift cards?"
    fresh = Client().get(reverse("chat:page", args=[faq_bot.slug]))
    assert fresh.status_code == 200 and faq_bot.greeting in fresh.content.decode()
    assert str(victim.public_id) not in fresh.content.decode()


def test_a_forged_conversation_token_is_not_accepted(client, faq_bot):
    data = ask(client, faq_bot.slug, QUESTION, accept="application/json").json()
    victim = Conversation.objects.get()
    forged = f"{victim.public_id}:{data['conversation'].split(':', 1)[1][::-1]}"
    response = ask(
        Client(), faq_bot.slug, "Second question", accept="application/json", conversation=forged
    )
    assert response.status_code == 200 and response.json()["message"]["text"]
    assert victim.messages.count() == 2 and Conversation.objects.count() == 2
    theirs = Conversation.objects.exclude(pk=victim.pk).get()
    assert public_id(response.json()["conversation"]) == str(theirs.public_id)
    assert theirs.messages.filter(role="user").get().text == "Second question"


@pytest.mark.parametrize("embed", ["", "1"])
def test_handing_off_someone_elses_conversation_is_404_and_mails_nobody(
    client, faq_bot, user, django_capture_on_commit_callbacks, embed
):
    ask(client, faq_bot.slug, QUESTION, accept="application/json")
    victim = Conversation.objects.get()
    url = reverse("chat:handoff", args=[faq_bot.slug])
    with django_capture_on_commit_callbacks(execute=True):
        response = Client().post(
            url,
            {"email": "attacker@evil.test", "conversation": str(victim.public_id), "embed": embed},
            HTTP_ACCEPT="application/json",
        )
        html = Client().post(
            url, {"email": "attacker@evil.test", "conversation": str(victim.public_id)}
        )
    assert response.status_code == 404
    assert response.json()["error"] == "That conversation has ended."
    assert html.status_code == 404 and "That conversation has ended." in html.content.decode()
    victim.refresh_from_db()
    assert victim.handoff_email == "" and victim.handoff_requested_at is None
    assert mail.outbox == [] and Conversation.objects.count() == 1
    # The visitor themself still hands off (their cookie).
    with django_capture_on_commit_callbacks(execute=True):
        own = client.post(url, {"email": "customer@shop.test"}, HTTP_ACCEPT="application/json")
    assert own.status_code == 200 and own.json()["handoff"] is True
    assert len(mail.outbox) == 1 and "Reply to them at customer@shop.test" in mail.outbox[0].body


def test_rating_with_someone_elses_conversation_id_is_404(client, faq_bot):
    data = ask(client, faq_bot.slug, QUESTION, accept="application/json").json()
    victim = Conversation.objects.get()
    url = reverse("chat:rate", args=[faq_bot.slug, data["message"]["id"]])
    response = Client().post(
        url,
        {"value": "down", "conversation": str(victim.public_id)},
        HTTP_ACCEPT="application/json",
    )
    assert response.status_code == 404
    assert response.json()["error"] == "That conversation has ended."
    assert Message.objects.get(pk=data["message"]["id"]).rating is None
    # With the token the page kept (cookies blocked), the visitor rates their own answer.
    own = Client().post(
        url, {"value": "up", "conversation": data["conversation"]}, HTTP_ACCEPT="application/json"
    )
    assert own.status_code == 200 and own.json() == {"rating": 1}


def test_api_call_naming_a_conversation_records_its_own(client, faq_bot):
    """/v1 is stateless per call: a conversation named in the body is not written into."""
    ask(client, faq_bot.slug, QUESTION, accept="application/json")
    victim = Conversation.objects.get()
    _, raw = api_key_create(bot=faq_bot, name="Backend")
    response = Client().post(
        "/v1/chat/completions",
        json.dumps(
            {
                "model": faq_bot.slug,
                "messages": [{"role": "user", "content": QUESTION}],
                "conversation": str(victim.public_id),
                "user": str(victim.public_id),
            }
        ),
        content_type="application/json",
        HTTP_AUTHORIZATION=f"Bearer {raw}",
    )
    assert response.status_code == 200
    assert response.json()["choices"][0]["message"]["content"] == ANSWER
    assert response.json()["askhandle"]["conversation"] != str(victim.public_id)
    assert victim.messages.count() == 2
    assert Conversation.objects.exclude(pk=victim.pk).get().channel == "api"


def test_asking_for_a_human_hands_off_and_emails_the_owner(client, faq_bot, user):
    ask(client, faq_bot.slug, QUESTION, accept="application/json")
    url = reverse("chat:handoff", args=[faq_bot.slug])
    response = client.post(url, {"email": "customer@shop.test"}, HTTP_ACCEPT="application/json")
    assert response.status_code == 200 and response.json()["handoff"] is True
    conversation = Conversation.objects.get()
    assert conversation.handoff_email == "customer@shop.test"
    assert conversation.handoff_requested_at is not None


def test_handoff_email_goes_to_owner_with_transcript(
    client, faq_bot, user, django_capture_on_commit_callbacks
):
    ask(client, faq_bot.slug, QUESTION, accept="application/json")
    with django_capture_on_commit_callbacks(execute=True):
        client.post(reverse("chat:handoff", args=[faq_bot.slug]), {"email": "customer@shop.test"})
    assert len(mail.outbox) == 1
    email = mail.outbox[0]
    assert email.to == [user.email]
    assert (
        "customer@shop.test" in email.body
        and QUESTION in email.body
        and "3-5 business days" in email.body
    )
    page = client.get(reverse("chat:page", args=[faq_bot.slug]) + "?handoff=sent").content.decode()
    assert "reply by email" in page


def test_handoff_needs_a_valid_email(client, bot):
    response = client.post(
        reverse("chat:handoff", args=[bot.slug]),
        {"email": "not-an-email"},
        HTTP_ACCEPT="application/json",
    )
    assert response.status_code == 400 and "valid email" in response.json()["error"]
    assert not Conversation.objects.filter(handoff_requested_at__isnull=False).exists()


def test_handoff_with_an_email_too_long_to_store_is_400(client, bot):
    # validate_email allows 320 characters, the column 254: the save was a 500 (issue 23, 5c).
    email = "a" * 60 + "@" + ".".join(["b" * 60] * 4) + ".test"
    assert len(email) > 254
    url = reverse("chat:handoff", args=[bot.slug])
    response = client.post(url, {"email": email}, HTTP_ACCEPT="application/json")
    assert response.status_code == 400 and "valid email" in response.json()["error"]
    assert not Conversation.objects.filter(handoff_requested_at__isnull=False).exists()
    ok = client.post(url, {"email": "a@b.test"}, HTTP_ACCEPT="application/json")
    assert ok.status_code == 200 and ok.json()["handoff"] is True


def test_handoff_before_any_question_starts_a_conversation(client, bot):
    response = client.post(
        reverse("chat:handoff", args=[bot.slug]),
        {"email": "a@b.test"},
        HTTP_ACCEPT="application/json",
    )
    assert response.status_code == 200
    assert Conversation.objects.get().handoff_email == "a@b.test"


def test_public_posts_enforce_csrf(faq_bot):
    csrf_client = Client(enforce_csrf_checks=True)
    ask_url = reverse("chat:ask", args=[faq_bot.slug])
    assert (
        csrf_client.post(ask_url, {"message": QUESTION}, HTTP_ACCEPT="application/json").status_code
        == 403
    )
    assert (
        csrf_client.post(
            reverse("chat:handoff", args=[faq_bot.slug]), {"email": "a@b.test"}
        ).status_code
        == 403
    )
    assert not Message.objects.exists() and not Conversation.objects.exists()

    page = csrf_client.get(reverse("chat:page", args=[faq_bot.slug]))
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.content.decode()).group(1)
    response = csrf_client.post(
        ask_url, {"message": QUESTION}, HTTP_ACCEPT="application/json", HTTP_X_CSRFTOKEN=token
    )
    assert response.status_code == 200
    message_id = response.json()["message"]["id"]
    rate_url = reverse("chat:rate", args=[faq_bot.slug, message_id])
    assert csrf_client.post(rate_url, {"value": "up"}).status_code == 403
    assert (
        csrf_client.post(rate_url, {"value": "up", "csrfmiddlewaretoken": token}).status_code == 302
    )


def test_page_may_be_framed_only_by_allowed_sites(client, bot):
    Widget.objects.filter(bot=bot).update(
        allowed_origins="https://shop.example.com\nhttp://localhost:8080/\nnot a url; script-src *"
    )
    response = client.get(reverse("chat:page", args=[bot.slug]) + "?embed=1")
    assert "X-Frame-Options" not in response.headers
    csp = response["Content-Security-Policy"]
    assert "frame-ancestors 'self' https://shop.example.com http://localhost:8080" in csp
    assert "script-src 'self'" in csp and "not a url" not in csp
    assert b"embedded" in response.content and b'name="embed" value="1"' in response.content
    # Dashboard pages still refuse framing.
    assert client.get(reverse("accounts:login"))["X-Frame-Options"] == "DENY"


@pytest.fixture
def generating_bot(bot, openai_server):
    """A bot on the OpenAI-compatible provider (the local stub server speaks the API), so
    generated answers stream word by word without the slow local model."""
    bot.provider = "openai"
    bot.save()
    return bot


def test_generated_answer_streams_sentence_by_sentence_and_is_sanitized(
    client, generating_bot, openai_server
):
    question = 'Tell me <script>alert("gen")</script> about shipping'
    policy = (
        'We ship <script>alert("gen")</script> every order within two working days. Parcels '
        "travel with a tracked courier service. Deliveries abroad take about one week longer."
    )
    add_document_chunk(generating_bot, policy, url="https://example.com/policy", embed_as=question)
    # A model that copies the passage, script and all: each sentence is grounded, so it streams.
    openai_server.replies.append(policy)
    response = ask(client, generating_bot.slug, question)
    raw = b"".join(response).decode()
    assert "<script" not in raw
    stream = [
        (block.split("\n")[0][7:], json.loads(block.split("data: ", 1)[1]))
        for block in raw.strip().split("\n\n")
    ]
    tokens = [d["text"] for k, d in stream if k == "token"]
    assert len(tokens) == 3  # one event per checked sentence, not one blob
    done = stream[-1][1]["message"]
    assert done["path"] == "generated" and done["text"] == "".join(tokens).strip()
    # The model echoed the script: the sanitizer drops it, content and all; the words stay.
    assert "<script" not in done["html"] and "alert" not in done["html"]
    assert "We ship" in done["html"] and "tracked courier" in done["html"]
    assert done["sources"] == [{"title": "Shipping policy", "url": "https://example.com/policy"}]
    assert Message.objects.get(role="assistant").path == "generated"


def test_provider_failure_is_recorded_and_shown_without_rating(
    client, generating_bot, openai_server
):
    add_document_chunk(generating_bot, "Where is my order?")
    openai_server.fail_next = 10  # every retry of the chat call fails
    data = ask(client, generating_bot.slug, "Where is my order?", accept="application/json").json()
    assert data["message"]["path"] == "error"
    assert data["message"]["text"] == generating_bot.fallback_message
    assert "chat-rate" not in data["fragment"]  # nothing to rate
    assert Message.objects.filter(role="assistant").count() == 1


def test_over_https_cookies_reach_the_widget_iframe(client, faq_bot, settings):
    """In a customer's page the chat is a third party: its cookies must be SameSite=None; Secure."""
    page = client.get(reverse("chat:page", args=[faq_bot.slug]), secure=True)
    csrf = page.cookies[settings.CSRF_COOKIE_NAME]
    assert csrf["samesite"] == "None" and csrf["secure"]
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.content.decode()).group(1)
    csrf_client = Client(enforce_csrf_checks=True)
    csrf_client.cookies[settings.CSRF_COOKIE_NAME] = csrf.value
    response = csrf_client.post(
        reverse("chat:ask", args=[faq_bot.slug]),
        {"message": QUESTION, "csrfmiddlewaretoken": token},
        HTTP_ACCEPT="application/json",
        secure=True,
        HTTP_REFERER="https://testserver/c/acme/",
    )
    assert response.status_code == 200
    conversation_cookie = response.cookies[f"ahc_{faq_bot.slug}"]
    assert conversation_cookie["samesite"] == "None" and conversation_cookie["secure"]
    assert conversation_cookie["httponly"] and conversation_cookie["path"] == f"/c/{faq_bot.slug}/"


def test_over_plain_http_cookies_stay_lax(client, faq_bot, settings):
    page = client.get(reverse("chat:page", args=[faq_bot.slug]))
    assert page.cookies[settings.CSRF_COOKIE_NAME]["samesite"] == "Lax"
    response = ask(client, faq_bot.slug, QUESTION, accept="application/json")
    assert response.cookies[f"ahc_{faq_bot.slug}"]["samesite"] == "Lax"
