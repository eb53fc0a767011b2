"""Reads for a bot's Overview card (rendered into bots/detail.html by the `bot_overview` tag):
its conversation figures (chat.selectors), the questions it could not answer, the state of its
knowledge and tuning, or a getting-started checklist while it knows nothing yet."""

from __future__ import annotations

from django.db.models import Count, Q

from bots.models import Bot
from knowledge import serving
from knowledge.models import FaqEntry, Source
from training.chat_tuning import deployed_run
from training.models import RetrievalTuning

from .clustering import QuestionGroup
from .selectors import (
    answered_questions,
    conversation_figures,
    daily_conversations,
    normalise,
    refusal_promise,
    unanswered_questions,
)

TOP_UNANSWERED = 5
SUGGESTED = 3


def knowledge_state(bot: Bot) -> dict:
    counts = bot.sources.aggregate(
        total=Count("pk"),
        ready=Count("pk", filter=Q(status=Source.Status.READY)),
        working=Count("pk", filter=Q(status__in=Source.ACTIVE)),
        failed=Count("pk", filter=Q(status=Source.Status.FAILED)),
    )
    return {
        **counts,
        "faq_entries": FaqEntry.objects.filter(bot=bot).count(),
        "chunks": bot.chunks.count(),
    }


def tuning_state(bot: Bot) -> dict:
    retrieval = RetrievalTuning.objects.filter(bot=bot).order_by("-created_at", "-pk").first()
    chat = deployed_run(bot)
    return {
        "retrieval": retrieval,
        "retrieval_on": bot.retrieval_tuning,
        "tuned_model": serving.tuned_model(bot),
        "chat_deployed": chat,
    }


def top_unanswered(bot: Bot, days: int = 30) -> list[dict]:
    """The most asked questions that got the fallback and that no FAQ entry answers yet, each
    with the anchor of its group on the Insights page (where the owner adds the answer)."""
    answered = answered_questions(bot)
    rows = []
    for text, count in unanswered_questions(bot=bot, days=days):
        if normalise(text) in answered:
            continue
        rows.append({"question": text, "count": count, "key": QuestionGroup([text], count).key})
        if len(rows) == TOP_UNANSWERED:
            break
    return rows


def suggested_questions(bot: Bot, n: int = SUGGESTED) -> list[str]:
    """Questions to try first: the bot's own FAQ entries that are ready to answer."""
    return list(
        FaqEntry.objects.filter(bot=bot, source__status=Source.Status.READY)
        .order_by("source_id", "pk")
        .values_list("question", flat=True)[:n]
    )


def overview_context(bot: Bot) -> dict:
    knowledge = knowledge_state(bot)
    week = conversation_figures(bot=bot, days=7)
    month = conversation_figures(bot=bot, days=30)
    new_bot = not knowledge["ready"] and not month.conversations
    context = {
        "bot": bot,
        "knowledge": knowledge,
        "new_bot": new_bot,
        "suggested": suggested_questions(bot),
    }
    if new_bot:
        return context
    return {
        **context,
        "periods": [week, month],
        "chart": daily_conversations(bot=bot, days=30),
        "unanswered": top_unanswered(bot),
        "tuning": tuning_state(bot),
        "promise": refusal_promise(bot),
    }
