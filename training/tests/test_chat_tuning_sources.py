"""Training examples beyond the FAQ: bot answers the owner marked good on a conversation's page.
Each is trained on after the customer's question before it, validated like the FAQ examples and
shown in the preview with its origin."""

import pytest
from django.core.exceptions import ValidationError
from django.urls import reverse

from chat import services
from chat.models import Conversation, Message
from knowledge.tests.factories import SHOP_FAQ
from training import chat_tuning, datasets
from training.models import ChatTuning

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("small_sets")]


def conversation(bot, *turns) -> list[Message]:
    """The bot's answers of a conversation of (question, answer) turns, saved in order."""
    conv = Conversation.objects.create(bot=bot)
    answers = []
    for question, answer in turns:
        Message.objects.create(conversation=conv, role="user", text=question)
        answers.append(
            Message.objects.create(conversation=conv, role="assistant", text=answer, path="direct")
        )
    return answers


def from_conversations(ts) -> list:
    return [e for e in ts.examples if e.origin == "conversation"]


def test_an_approved_answer_is_trained_on_after_the_question_before_it(shop):
    first, second = conversation(
        shop,
        ("Hi there", "Hello! How can I help?"),
        ("Do you sell bike helmets?", "Yes, helmets from 30 euros, in store only."),
    )
    services.message_training_approve(message=second)

    ts = datasets.build(shop, mode="finetuned")
    [example] = from_conversations(ts)
    assert example.kind == "conversation" and example.origin_id == second.pk
    assert [m["role"] for m in example.messages] == ["system", "user", "assistant"]
    assert example.question == "Do you sell bike helmets?"
    assert example.target == "Yes, helmets from 30 euros, in store only."
    assert example.tokens > 10 and ts.launchable

    services.message_training_approve(message=second, approved=False)
    assert not from_conversations(datasets.build(shop, mode="finetuned"))


def test_both_mode_gives_an_approved_answer_the_retrieved_context(shop):
    [answer] = conversation(shop, ("Are you open on Saturdays?", "Yes, 9:00-18:00 on Saturday."))
    services.message_training_approve(message=answer)

    [example] = from_conversations(datasets.build(shop, mode="both"))
    system = example.messages[0]["content"]
    assert example.kind == "context_conversation"
    assert "Knowledge:\n[1]" in system and SHOP_FAQ[0]["answer"] in system
    assert example.target == "Yes, 9:00-18:00 on Saturday."


def test_an_approved_answer_that_contradicts_the_faq_blocks_the_launch(shop):
    # "Do you repair e-bikes?" has two phrasings, so it is never held out.
    [answer] = conversation(shop, ("Do you repair e-bikes?", "No, we only sell them."))
    services.message_training_approve(message=answer)

    ts = datasets.build(shop, mode="finetuned")
    issue = next(i for i in ts.errors if i.code == "conflicts_faq")
    numbered = {n: ts.examples[n - 1] for n in issue.examples}
    assert {e.origin for e in numbered.values()} == {"faq", "conversation"}
    assert all(e.question == "Do you repair e-bikes?" for e in numbered.values())
    with pytest.raises(ValidationError, match="answers an FAQ question differently"):
        chat_tuning.chat_tuning_launch(bot=shop)
    assert not ChatTuning.objects.exists()


def test_an_approved_answer_repeating_an_faq_example_is_a_duplicate_not_a_conflict(shop):
    [answer] = conversation(shop, ("Do you repair e-bikes?", SHOP_FAQ[2]["answer"]))
    services.message_training_approve(message=answer)

    issues = {i.code: i for i in datasets.build(shop, mode="finetuned").issues}
    assert "conflicts_faq" not in issues and issues["duplicates"].level == "warning"


def test_an_approved_answer_to_a_held_out_phrasing_stays_out_of_training(shop):
    held = datasets.build(shop, mode="finetuned").held_out[0]
    [answer] = conversation(shop, (held["question"], held["answer"]))
    services.message_training_approve(message=answer)

    ts = datasets.build(shop, mode="finetuned")
    assert not from_conversations(ts)
    assert held["question"] not in {e.question for e in ts.examples}


def test_an_overlong_approved_answer_is_flagged(shop, settings):
    settings.CHAT_TUNING_MAX_TOKENS = 60
    [answer] = conversation(shop, ("Tell me everything", "We sell bikes. " * 40))
    services.message_training_approve(message=answer)

    ts = datasets.build(shop, mode="finetuned")
    too_long = next(i for i in ts.errors if i.code == "too_long")
    assert any(ts.examples[n - 1].origin == "conversation" for n in too_long.examples)


def test_another_bots_approved_answers_are_not_used(shop, other_bot):
    [answer] = conversation(other_bot, ("Do you sell bike helmets?", "Rival helmets."))
    services.message_training_approve(message=answer)

    assert not from_conversations(datasets.build(shop, mode="finetuned"))


def test_the_preview_shows_an_approved_answer_with_its_origin(shop, owner_client):
    [answer] = conversation(shop, ("Do you sell bike helmets?", "Yes, helmets from 30 euros."))
    services.message_training_approve(message=answer)

    body = owner_client.get(
        reverse("training:chat_tuning", args=[shop.pk]), {"build": "1"}
    ).content.decode()
    assert "From conversation marked good" in body
    assert "Yes, helmets from 30 euros." in body and "From FAQ entry" in body
