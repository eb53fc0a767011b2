"""Marking a bot answer "good for training" on a conversation's page: one POST (htmx or a plain
form), undone the same way; only the owner's workspace can, and only the bot's answers."""

import pytest
from django.urls import reverse

from chat import services
from chat.models import Conversation, Message

pytestmark = pytest.mark.django_db


@pytest.fixture
def turn(bot):
    conversation = Conversation.objects.create(bot=bot)
    question = Message.objects.create(
        conversation=conversation, role="user", text="Do you sell helmets?"
    )
    answer = Message.objects.create(
        conversation=conversation, role="assistant", text="Yes, from 30 euros.", path="direct"
    )
    return conversation, question, answer


def mark_url(conversation, message):
    return reverse(
        "chat:message_training_mark",
        args=[conversation.bot_id, conversation.public_id, message.pk],
    )


def test_the_transcript_offers_the_mark_on_answers_only(owner_client, turn):
    conversation, question, answer = turn
    body = owner_client.get(
        reverse("chat:conversation", args=[conversation.bot_id, conversation.public_id])
    ).content.decode()

    assert f'id="training-mark-{answer.pk}"' in body
    assert f'id="training-mark-{question.pk}"' not in body


def test_a_plain_post_marks_and_unmarks_and_returns_to_the_answer(owner_client, turn):
    conversation, _, answer = turn

    response = owner_client.post(mark_url(conversation, answer), {"approved": "1"})
    assert response.status_code == 302 and response["Location"].endswith(f"#m{answer.pk}")
    answer.refresh_from_db()
    assert answer.training_approved

    owner_client.post(mark_url(conversation, answer), {"approved": "0"})
    answer.refresh_from_db()
    assert not answer.training_approved


def test_htmx_gets_only_the_button_fragment(owner_client, turn):
    conversation, _, answer = turn

    response = owner_client.post(
        mark_url(conversation, answer), {"approved": "1"}, HTTP_HX_REQUEST="true"
    )
    body = response.content.decode()
    assert response.status_code == 200 and "<html" not in body
    assert body.lstrip().startswith(
        f'<form class="turn-training small row" id="training-mark-{answer.pk}"'
    )
    assert "Unmark" in body and 'name="approved" value="0"' in body


def test_another_workspace_gets_404_and_nothing_changes(other_client, turn):
    conversation, _, answer = turn

    response = other_client.post(mark_url(conversation, answer), {"approved": "1"})
    assert response.status_code == 404
    answer.refresh_from_db()
    assert not answer.training_approved


def test_a_customer_message_cannot_be_marked(owner_client, turn):
    conversation, question, _ = turn

    assert owner_client.post(mark_url(conversation, question), {"approved": "1"}).status_code == 404
    with pytest.raises(Exception, match="Only the bot's answers"):
        services.message_training_approve(message=question)


def test_marking_needs_a_post(owner_client, turn):
    conversation, _, answer = turn
    assert owner_client.get(mark_url(conversation, answer)).status_code == 405
