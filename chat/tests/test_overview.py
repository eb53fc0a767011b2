"""A bot's Overview: real figures from seeded conversations (computed by hand below), the top
unanswered questions with a link to answer them, knowledge and tuning state, and a checklist
for a new bot. The figures are read in chat.selectors; the cards are rendered by chat's tag."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from chat.models import Conversation, Message
from chat.selectors import conversation_figures, daily_conversations

pytestmark = pytest.mark.django_db


def conversation(bot, turns, *, days_ago=0, handoff=False):
    """turns: [(question, path, rating)]; created `days_ago` days before now."""
    when = timezone.now() - timedelta(days=days_ago)
    conv = Conversation.objects.create(bot=bot, channel="web")
    for question, path, rating in turns:
        Message.objects.create(conversation=conv, role=Message.Role.USER, text=question)
        Message.objects.create(
            conversation=conv, role=Message.Role.BOT, text="…", path=path, rating=rating
        )
    if handoff:
        conv.handoff_email, conv.handoff_requested_at = "jane@example.com", when
        conv.save()
    Conversation.objects.filter(pk=conv.pk).update(created_at=when)
    conv.messages.update(created_at=when)
    return conv


@pytest.fixture
def seeded(bot, other_bot):
    gift = "Do you sell gift cards?"
    # Last 7 days: three conversations.
    conversation(bot, [("How long does shipping take?", "direct", 1)], days_ago=1)  # resolved
    conversation(bot, [(gift, "fallback", -1)], days_ago=2, handoff=True)  # handed off
    conversation(  # resolved: a fallback alone is not a thumbs-down or a hand-off
        bot, [("do you sell GIFT cards", "fallback", None), ("Where are you?", "best_match", 1)]
    )
    # 8 to 30 days ago: two more.
    conversation(bot, [("Can I pay by invoice?", "fallback", None)], days_ago=10, handoff=True)
    conversation(
        bot,
        [("Opening hours?", "direct", -1), ("And on Sundays?", "extractive", None)],
        days_ago=20,
    )
    # Outside both windows, and another workspace's bot: never counted.
    conversation(bot, [(gift, "fallback", -1)], days_ago=40, handoff=True)
    conversation(other_bot, [(gift, "fallback", -1)], handoff=True)
    return bot


def test_figures_for_the_last_7_and_30_days(seeded):
    week = conversation_figures(bot=seeded, days=7)
    # 3 conversations; replies: direct, fallback, fallback, best_match -> 2 of 4 answered;
    # resolved: the first and third (no hand-off, no thumbs-down) -> 2 of 3; 1 handed off.
    assert (week.conversations, week.answers, week.answered) == (3, 4, 2)
    assert (week.answer_rate, week.resolution_rate, week.handoff_rate) == (50.0, 66.7, 33.3)
    assert (week.thumbs_up, week.thumbs_down) == (2, 1)

    month = conversation_figures(bot=seeded, days=30)
    # + invoice (fallback, handed off) and opening hours (direct -1, extractive):
    # 5 conversations; 7 replies, 4 answered; resolved 2 of 5; handed off 2 of 5.
    assert (month.conversations, month.answers, month.answered) == (5, 7, 4)
    assert (month.answer_rate, month.resolution_rate, month.handoff_rate) == (57.1, 40.0, 40.0)
    assert (month.thumbs_up, month.thumbs_down) == (2, 2)

    chart = daily_conversations(bot=seeded, days=30)
    assert len(chart["labels"]) == 30 and sum(chart["conversations"]) == 5
    assert chart["conversations"][-1] == 1 and sum(chart["handed_off"]) == 2


def figure(html: str, name: str) -> str:
    cell = re.search(rf'data-figure="{name}">(.*?)</td>', html, re.S).group(1)
    return " ".join(re.sub(r"<[^>]+>", " ", cell).split())


def test_overview_page_shows_the_figures_and_the_questions_to_answer(owner_client, seeded):
    from knowledge.services import faq_entry_create

    faq_entry_create(bot=seeded, question="Can I pay by invoice?", answer="Yes, for businesses.")
    html = owner_client.get(reverse("bots:detail", args=[seeded.pk])).content.decode()
    assert figure(html, "conversations-7") == "3" and figure(html, "conversations-30") == "5"
    assert figure(html, "answer-rate-7") == "50.0% 2 of 4 replies"
    assert figure(html, "answer-rate-30") == "57.1% 4 of 7 replies"
    assert figure(html, "resolution-rate-7") == "66.7%"
    assert figure(html, "resolution-rate-30") == "40.0%"
    assert figure(html, "handoff-rate-30") == "40.0% 2 conversations"
    assert figure(html, "thumbs-30") == "2 up, 2 down"
    assert 'id="chart-overview"' in html and 'id="overview-data"' in html
    assert "getting-started" not in html

    # The gift-card question (asked twice, differently typed) needs an answer; the invoice one
    # was answered by the new FAQ entry, so it is not listed.
    unanswered = re.search(r'id="overview-unanswered"(.*?)</section>', html, re.S).group(1)
    assert "do you sell gift cards" in unanswered.casefold() and "asked 2×" in unanswered
    assert "invoice" not in unanswered
    link = re.search(r'href="([^"]+)"', unanswered).group(1).replace("&amp;", "&")
    assert link.startswith(reverse("chat:insights", args=[seeded.pk]) + "?days=30#group-")
    # The anchor is the one the Insights page gives that question's group.
    insights = owner_client.get(link.split("#")[0]).content.decode()
    assert f'id="{link.split("#")[1]}"' in insights


def test_a_new_bot_shows_the_three_step_checklist(owner_client, bot):
    html = owner_client.get(reverse("bots:detail", args=[bot.pk])).content.decode()
    assert 'id="getting-started"' in html and 'id="overview-figures"' not in html
    for step in ("Add knowledge", "Test it", "Share it"):
        assert step in html
    assert reverse("chat:start", args=[bot.pk]) in html
    assert f"http://testserver/c/{bot.slug}/" in html  # the link to copy


def test_knowledge_and_tuning_state(owner_client, seeded):
    from knowledge.models import Source
    from knowledge.services import faq_entry_create

    entry = faq_entry_create(bot=seeded, question="Hours?", answer="9 to 5.")
    Source.objects.filter(pk=entry.source_id).update(status=Source.Status.READY)
    html = owner_client.get(reverse("bots:detail", args=[seeded.pk])).content.decode()
    card = re.search(r'id="overview-knowledge"(.*?)</section>', html, re.S).group(1)
    assert "1 source ready" in card and "1 FAQ entry" in card
    tuning = re.search(r'id="overview-tuning"(.*?)</section>', html, re.S).group(1)
    assert "Base model" in tuning


def test_another_workspace_gets_404(other_client, seeded):
    assert other_client.get(reverse("bots:detail", args=[seeded.pk])).status_code == 404
    assert other_client.get(reverse("chat:start", args=[seeded.pk])).status_code == 404


def test_the_overview_says_whether_the_refusal_promise_held_on_labelled_questions(
    owner_client, seeded
):
    from chat.models import LabelledQuestion

    bot = seeded
    page = owner_client.get(reverse("bots:detail", args=[bot.pk])).content.decode()
    assert "Declining what it cannot answer" not in page  # nothing labelled yet
    # The owner marked the gift-card question "should decline": asked twice in the last 7 days
    # (once answered by the fallback, once "do you sell GIFT cards" is another text), and once
    # 40 days ago (outside the window). Another question was declined but is not labelled.
    LabelledQuestion.objects.create(bot=bot, text="Do you sell gift cards?", should_decline=True)
    LabelledQuestion.objects.create(bot=bot, text="Where are you?", should_decline=True)
    bot.calibration.caution = 0.7
    bot.calibration.save(update_fields=["caution"])
    page = owner_client.get(reverse("bots:detail", args=[bot.pk])).content.decode()
    card = page[page.index('id="overview-promise"') :]
    assert "Asked to decline about 7 in 10" in card
    # "Do you sell gift cards?" (fallback, 2 days ago) and "Where are you?" (best match, today).
    assert "it declined 1 of the 2 questions you marked" in card
