"""Insights reads: what customers ask and how the bot answered, from Conversation/Message rows."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from django.db.models import Aggregate, Count, FloatField, OuterRef, Q, Subquery
from django.db.models.functions import TruncDate
from django.utils import timezone

from bots.models import Bot, Conversation, Message

RANGES = (7, 30, 90)


DEFAULT_RANGE = 30


# Embedding is the costly step: cap the questions looked at (most recent first).
MAX_QUESTIONS = 500


PATH_COLOURS = {
    Message.Path.DIRECT: "#059669",
    Message.Path.BEST_MATCH: "#0d9488",
    Message.Path.EXTRACTIVE: "#0891b2",
    Message.Path.GENERATED: "#4f46e5",
    Message.Path.FALLBACK: "#d97706",
    Message.Path.ERROR: "#dc2626",
}


class Percentile(Aggregate):
    """PostgreSQL's percentile_cont(p) WITHIN GROUP (ORDER BY expr)."""

    function = "PERCENTILE_CONT"
    template = "%(function)s(%(percentile)s) WITHIN GROUP (ORDER BY %(expressions)s)"
    output_field = FloatField()

    def __init__(self, expression, percentile: float, **extra):
        super().__init__(expression, percentile=float(percentile), **extra)


def parse_range(value) -> int:
    try:
        days = int(value)
    except (TypeError, ValueError):
        return DEFAULT_RANGE
    return days if days in RANGES else DEFAULT_RANGE


def range_start(days: int) -> datetime:
    """Midnight (local time) at the start of the window, so the first day is a whole day."""
    first_day = timezone.localdate() - timedelta(days=days - 1)
    return timezone.make_aware(datetime.combine(first_day, datetime.min.time()))


def _messages(bot: Bot, since: datetime):
    return Message.objects.filter(conversation__bot=bot, created_at__gte=since)


def daily_activity(*, bot: Bot, days: int) -> dict:
    """Conversations started and messages sent per local day, zeros included."""
    since = range_start(days)
    tz = timezone.get_current_timezone()
    conv = dict(
        Conversation.objects.filter(bot=bot, created_at__gte=since)
        .annotate(day=TruncDate("created_at", tzinfo=tz))
        .values_list("day")
        .annotate(n=Count("pk"))
        .values_list("day", "n")
    )
    msgs = dict(
        _messages(bot, since)
        .annotate(day=TruncDate("created_at", tzinfo=tz))
        .values_list("day")
        .annotate(n=Count("pk"))
        .values_list("day", "n")
    )
    first: date = since.date()
    day_list = [first + timedelta(days=i) for i in range(days)]
    return {
        "labels": [d.isoformat() for d in day_list],
        "conversations": [conv.get(d, 0) for d in day_list],
        "messages": [msgs.get(d, 0) for d in day_list],
    }


def answer_paths(*, bot: Bot, days: int) -> list[dict]:
    """How the bot's answers were produced, every path listed, largest share first."""
    counts = dict(
        _messages(bot, range_start(days))
        .filter(role=Message.Role.BOT)
        .exclude(path="")
        .values_list("path")
        .annotate(n=Count("pk"))
        .values_list("path", "n")
    )
    total = sum(counts.values())
    rows = [
        {
            "path": value,
            "label": label,
            "count": counts.get(value, 0),
            "percent": round(100 * counts.get(value, 0) / total, 1) if total else 0.0,
            "colour": PATH_COLOURS[value],
        }
        for value, label in Message.Path.choices
    ]
    return sorted(rows, key=lambda r: -r["count"])


def rating_summary(*, bot: Bot, days: int) -> dict:
    answers = _messages(bot, range_start(days)).filter(role=Message.Role.BOT)
    agg = answers.aggregate(
        answers=Count("pk"),
        up=Count("pk", filter=Q(rating=1)),
        down=Count("pk", filter=Q(rating=-1)),
    )
    rated = agg["up"] + agg["down"]

    def pct(n: int, of: int) -> float:
        return round(100 * n / of, 1) if of else 0.0

    return {
        **agg,
        "rated": rated,
        "up_percent": pct(agg["up"], rated),
        "down_percent": pct(agg["down"], rated),
        "rated_percent": pct(rated, agg["answers"]),
    }


def latency_by_path(*, bot: Bot, days: int) -> list[dict]:
    """p50 and p95 answer latency (ms) per answer path, for paths that have answers."""
    labels = dict(Message.Path.choices)
    rows = (
        _messages(bot, range_start(days))
        .filter(role=Message.Role.BOT, latency_ms__isnull=False)
        .exclude(path="")
        .values("path")
        .annotate(
            count=Count("pk"),
            p50=Percentile("latency_ms", 0.5),
            p95=Percentile("latency_ms", 0.95),
        )
        .order_by("path")
    )
    order = [value for value, _ in Message.Path.choices]
    return sorted(
        (
            {
                "path": r["path"],
                "label": labels.get(r["path"], r["path"]),
                "count": r["count"],
                "p50": round(r["p50"]),
                "p95": round(r["p95"]),
                "colour": PATH_COLOURS.get(r["path"], "#6b7280"),
            }
            for r in rows
        ),
        key=lambda r: order.index(r["path"]) if r["path"] in order else len(order),
    )


@dataclass
class WeakQuestion:
    text: str
    asked_at: datetime
    fallback: bool
    thumbs_down: bool


def normalise(question: str) -> str:
    """The form two questions are compared in: case, spacing and end punctuation ignored."""
    return re.sub(r"\s+", " ", question).strip().rstrip("?!. ").casefold()


def weak_questions(*, bot: Bot, days: int, limit: int = MAX_QUESTIONS) -> list[WeakQuestion]:
    """The customer question behind each fallback or thumbs-down answer, most recent first."""
    question = (
        Message.objects.filter(
            conversation=OuterRef("conversation"), role=Message.Role.USER, pk__lt=OuterRef("pk")
        )
        .order_by("-pk")
        .values("text")[:1]
    )
    # The newest matching answers first, then their questions: a subquery in the WHERE clause
    # would run for every candidate row (seconds on 10k messages with stale statistics).
    answers = (
        _messages(bot, range_start(days))
        .filter(role=Message.Role.BOT)
        .filter(Q(path=Message.Path.FALLBACK) | Q(rating=-1))
        .order_by("-created_at", "-pk")[:limit]
    )
    rows = Message.objects.filter(pk__in=answers.values("pk")).annotate(question=Subquery(question))
    rows = sorted(
        rows.values_list("question", "created_at", "path", "rating", "pk"),
        key=lambda r: (r[1], r[4]),
        reverse=True,
    )
    return [
        WeakQuestion(
            text=q.strip(),
            asked_at=at,
            fallback=path == Message.Path.FALLBACK,
            thumbs_down=rating == -1,
        )
        for q, at, path, rating, _ in rows
        if q and q.strip()
    ]


def answered_questions(bot: Bot) -> dict[str, object]:
    """Normalised FAQ questions (and alternates) of the bot -> their FaqEntry."""
    from knowledge.models import FaqEntry

    answered: dict[str, object] = {}
    for entry in FaqEntry.objects.filter(bot=bot).only(
        "pk", "question", "answer", "alternate_questions"
    ):
        for q in [entry.question, *(entry.alternate_questions or [])]:
            if isinstance(q, str):
                answered.setdefault(normalise(q), entry)
    return answered


def labelled_for_calibration(bot: Bot) -> list[tuple[str, int | None]]:
    """The questions the owner labelled (from conversations, or uploaded on the Compare tab), as
    training.calibration.observed_source wants them: (text, the FAQ entry it should get, or None:
    decline). The newest LABELS_FOR_CALIBRATION."""
    from .models import LabelledQuestion

    rows = LabelledQuestion.objects.filter(bot=bot).values_list(
        "text", "faq_entry_id", "should_decline"
    )[:LABELS_FOR_CALIBRATION]
    return [(text, None if decline else entry) for text, entry, decline in rows]


LABELS_FOR_CALIBRATION = 2000  # one calibration embeds them all; newer labels matter more


def refusal_promise(bot: Bot, days: int = 7) -> dict | None:
    """Whether the bot kept its refusal promise on its own traffic: of the customer questions of
    the last `days` that the owner labelled "should decline", how many got the fallback.
    {"caution", "marked", "declined"}, or None when none was labelled."""
    from .models import LabelledQuestion

    since = timezone.now() - timedelta(days=days)
    marked = LabelledQuestion.objects.filter(bot=bot, should_decline=True).values("text")
    reply = (
        Message.objects.filter(
            conversation_id=OuterRef("conversation_id"),
            role=Message.Role.BOT,
            pk__gt=OuterRef("pk"),
        )
        .order_by("pk")
        .values("path")[:1]
    )
    asked = list(
        Message.objects.filter(
            conversation__bot=bot, role=Message.Role.USER, created_at__gte=since, text__in=marked
        )
        .annotate(reply=Subquery(reply))
        .order_by("-created_at")
        .values_list("reply", flat=True)[:500]
    )
    if not asked:
        return None
    declined = sum(path == Message.Path.FALLBACK for path in asked)
    return {"caution": bot.caution, "marked": len(asked), "declined": declined, "days": days}
