import csv
import io
import uuid

import pytest
from django.test import Client
from django.urls import reverse

from chat.models import Conversation, Message

pytestmark = pytest.mark.django_db


def chat(bot, *turns, channel="web", handoff_email=""):
    """A conversation from (question, answer, path, rating) turns, saved in order."""
    from django.utils import timezone

    conversation = Conversation.objects.create(
        bot=bot,
        channel=channel,
        handoff_email=handoff_email,
        handoff_requested_at=timezone.now() if handoff_email else None,
    )
    for question, answer, path, rating in turns:
        Message.objects.create(conversation=conversation, role="user", text=question)
        Message.objects.create(
            conversation=conversation,
            role="assistant",
            text=answer,
            path=path,
            rating=rating,
            score=0.91 if path == "direct" else 0.2,
            latency_ms=120,
            sources=[
                {
                    "title": "Shipping FAQ",
                    "url": "https://acme.test/shipping",
                    "chunk_id": 1,
                    "score": 0.91,
                }
            ]
            if path != "fallback"
            else [],
        )
    return conversation


@pytest.fixture
def history(bot):
    return {
        "shipping": chat(
            bot, ("Do you ship to Canada?", "Yes, we ship to Canada in 5-7 days.", "direct", 1)
        ),
        "refund": chat(
            bot,
            ("How do refunds work?", "Refunds take 3 days.", "generated", -1),
            ("Can I talk to someone?", "Sorry, I don't know.", "fallback", None),
            handoff_email="jane@customer.test",
        ),
        "opening": chat(
            bot,
            ("Are you open on Sundays?", "Sorry, I don't know.", "fallback", None),
            channel="widget",
        ),
    }


def list_url(bot, **params):
    from urllib.parse import urlencode

    return reverse("chat:conversations", args=[bot.pk]) + (
        "?" + urlencode(params) if params else ""
    )


def shown(response) -> set[str]:
    return {str(c.public_id) for c in response.context["page"].object_list}


def ids(*conversations) -> set[str]:
    return {str(c.public_id) for c in conversations}


def test_list_shows_every_conversation_newest_first(owner_client, bot, history):
    response = owner_client.get(list_url(bot))
    assert response.status_code == 200
    page = list(response.context["page"].object_list)
    assert [c.public_id for c in page] == [
        history[k].public_id for k in ("opening", "refund", "shipping")
    ]
    refund = page[1]
    assert (refund.message_count, refund.fallback_count, refund.down_count) == (4, 1, 1)
    assert refund.first_question == "How do refunds work?"
    assert (
        b"Do you ship to Canada?" in response.content and b"jane@customer.test" in response.content
    )


def test_search_matches_message_text_and_handoff_email(owner_client, bot, history):
    assert shown(owner_client.get(list_url(bot, q="canada"))) == ids(history["shipping"])
    assert shown(owner_client.get(list_url(bot, q="jane@customer"))) == ids(history["refund"])
    assert shown(owner_client.get(list_url(bot, q="nothing like this"))) == set()


@pytest.mark.parametrize(
    "params, expected",
    [
        ({"path": "direct"}, {"shipping"}),
        ({"path": "generated"}, {"refund"}),
        ({"path": "fallback"}, {"refund", "opening"}),
        ({"rating": "up"}, {"shipping"}),
        ({"rating": "down"}, {"refund"}),
        ({"unanswered": "on"}, {"refund", "opening"}),
        ({"handoff": "on"}, {"refund"}),
        ({"unanswered": "on", "handoff": "on"}, {"refund"}),
        ({"unanswered": "on", "q": "sunday"}, {"opening"}),
    ],
)
def test_filters_narrow_the_list(owner_client, bot, history, params, expected):
    response = owner_client.get(list_url(bot, **params))
    assert shown(response) == ids(*(history[k] for k in expected))


def test_invalid_filter_value_is_ignored_not_an_error(owner_client, bot, history):
    response = owner_client.get(list_url(bot, path="<script>", rating="sideways"))
    assert response.status_code == 200
    assert shown(response) == ids(*history.values())


def test_conversation_with_many_messages_is_listed_once(owner_client, bot):
    conversation = chat(
        bot, *[(f"Question {i} about canada", "No idea", "fallback", -1) for i in range(5)]
    )
    response = owner_client.get(list_url(bot, q="canada", unanswered="on", rating="down"))
    assert [c.pk for c in response.context["page"].object_list] == [conversation.pk]
    assert response.context["page"].paginator.count == 1


def test_pagination_splits_into_pages_of_25(owner_client, bot):
    for i in range(30):
        chat(bot, (f"Question {i}", "Answer", "direct", None))
    first = owner_client.get(list_url(bot))
    second = owner_client.get(list_url(bot, page=2))
    assert len(first.context["page"].object_list) == 25
    assert len(second.context["page"].object_list) == 5
    assert not shown(first) & shown(second)
    assert b"Page 1 of 2" in first.content


def test_pagination_links_keep_the_filters(owner_client, bot):
    for i in range(30):
        chat(bot, (f"Question {i}", "Sorry", "fallback", None))
    response = owner_client.get(list_url(bot, unanswered="on"))
    assert b"?unanswered=on&amp;page=2" in response.content


def test_htmx_filter_request_returns_only_the_table(owner_client, bot, history):
    response = owner_client.get(
        list_url(bot, rating="up"), HTTP_HX_REQUEST="true", HTTP_HX_TARGET="conversation-table"
    )
    body = response.content.decode()
    assert response.status_code == 200
    assert body.lstrip().startswith('<div id="conversation-table">')
    assert "<html" not in body and "conv-filters" not in body
    assert "Do you ship to Canada?" in body and "How do refunds work?" not in body


def test_empty_states(owner_client, bot):
    response = owner_client.get(list_url(bot))
    assert b"No conversations yet" in response.content
    chat(bot, ("Hello", "Hi", "direct", None))
    response = owner_client.get(list_url(bot, q="zzz"))
    assert b"No conversations match" in response.content


def test_conversation_view_shows_transcript_with_paths_sources_rating_latency(
    owner_client, bot, history
):
    conversation = history["refund"]
    response = owner_client.get(reverse("chat:conversation", args=[bot.pk, conversation.public_id]))
    body = response.content.decode()
    assert response.status_code == 200
    assert (
        body.index("How do refunds work?")
        < body.index("Refunds take 3 days.")
        < body.index("Can I talk to someone?")
    )
    assert "Generated from knowledge" in body and "Fallback (unanswered)" in body
    assert "Shipping FAQ" in body and 'href="https://acme.test/shipping"' in body
    assert "</svg>\n Not helpful" in body and "120 ms" in body
    # The transcript must not leak into base.html's flash-message list.
    assert 'class="messages"' not in body
    assert "jane@customer.test" in body


def test_conversation_of_another_bot_in_same_workspace_is_404(
    owner_client, bot, workspace, history
):
    from bots.services import bot_create

    sibling = bot_create(workspace=workspace, name="Second", slug="second")
    url = reverse("chat:conversation", args=[sibling.pk, history["refund"].public_id])
    assert owner_client.get(url).status_code == 404
    url = reverse("chat:conversation", args=[bot.pk, uuid.uuid4()])
    assert owner_client.get(url).status_code == 404
    own = owner_client.get(reverse("chat:conversation", args=[bot.pk, history["refund"].public_id]))
    assert own.status_code == 200 and b"How do refunds work?" in own.content


def read_csv(response) -> list[list[str]]:
    assert response.streaming
    content = b"".join(response.streaming_content)
    assert content.startswith("\ufeff".encode())  # Excel needs the BOM to read UTF-8
    return list(csv.reader(io.StringIO(content.decode("utf-8-sig"))))


def test_export_streams_one_row_per_message_of_the_filtered_set(owner_client, bot, history):
    response = owner_client.get(
        reverse("chat:conversation_export", args=[bot.pk]) + "?unanswered=on"
    )
    assert response["Content-Type"].startswith("text/csv")
    assert 'attachment; filename="acme-conversations-' in response["Content-Disposition"]
    rows = read_csv(response)
    assert rows[0][:8] == [
        "conversation_id",
        "time",
        "role",
        "text",
        "path",
        "score",
        "latency_ms",
        "rating",
    ]
    body = rows[1:]
    assert len(body) == 6  # refund (4 messages) + opening (2); shipping is filtered out
    assert {r[0] for r in body} == ids(history["refund"], history["opening"])
    refund_answer = next(r for r in body if r[3] == "Refunds take 3 days.")
    assert refund_answer[2:8] == [
        "assistant",
        "Refunds take 3 days.",
        "generated",
        "0.2000",
        "120",
        "down",
    ]
    question = next(r for r in body if r[3] == "How do refunds work?")
    assert question[2] == "user" and question[4:8] == ["", "", "", ""]


def test_export_without_filters_has_every_message(owner_client, bot, history):
    rows = read_csv(owner_client.get(reverse("chat:conversation_export", args=[bot.pk])))
    assert len(rows) == 1 + 2 + 4 + 2


@pytest.mark.parametrize(
    "payload", ['=HYPERLINK("http://evil")', "+1+2", "-2+3", "@SUM(A1)", "\t=1"]
)
def test_export_neutralises_formula_cells(owner_client, bot, payload):
    chat(bot, (payload, "Sorry", "fallback", None), handoff_email="")
    rows = read_csv(owner_client.get(reverse("chat:conversation_export", args=[bot.pk])))
    question = rows[1]
    assert question[3] == "'" + payload
    assert not any(cell.startswith(("=", "+", "-", "@", "\t")) for row in rows for cell in row)


def test_export_keeps_ordinary_text_unchanged(owner_client, bot):
    chat(bot, ("What's 2+2? It's \"four\", right. Café ☕\nSecond line", "Yes", "direct", 1))
    rows = read_csv(owner_client.get(reverse("chat:conversation_export", args=[bot.pk])))
    assert rows[1][3] == "What's 2+2? It's \"four\", right. Café ☕\nSecond line"


@pytest.mark.parametrize(
    "name, extra",
    [
        ("chat:conversations", {}),
        ("chat:conversation_export", {}),
        ("chat:conversation", {"public_id": True}),
    ],
)
def test_another_tenant_gets_404_on_every_url(other_client, user, bot, history, name, extra):
    args = [bot.pk, history["refund"].public_id] if extra else [bot.pk]
    assert other_client.get(reverse(name, args=args)).status_code == 404
    owner = Client()  # the same address opens for the bot's own workspace
    owner.force_login(user)
    assert owner.get(reverse(name, args=args)).status_code == 200


def test_missing_bot_is_404(owner_client):
    assert owner_client.get(reverse("chat:conversations", args=[987654])).status_code == 404


def test_anonymous_is_sent_to_login(client, bot):
    response = client.get(reverse("chat:conversation_export", args=[bot.pk]))
    assert response.status_code == 302 and "/accounts/login/" in response.url


def test_other_bots_conversations_never_appear(owner_client, bot, other_bot, history):
    chat(other_bot, ("Rival secret question", "Rival answer", "direct", 1))
    response = owner_client.get(list_url(bot))
    assert response.status_code == 200
    assert shown(response) == ids(*history.values())  # this bot's three, nothing else
    assert b"Do you ship to Canada?" in response.content
    assert b"Rival secret question" not in response.content
    export = owner_client.get(reverse("chat:conversation_export", args=[bot.pk]))
    assert export.status_code == 200
    rows = read_csv(export)
    assert len(rows) == 1 + 2 + 4 + 2  # the header and every message of this bot's three
    assert {row[0] for row in rows[1:]} == ids(*history.values())
    assert not any("Rival" in cell for row in rows for cell in row)
