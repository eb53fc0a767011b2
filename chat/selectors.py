"""Reads of a bot's conversations, for Insights and the Overview: what customers ask, how the
bot answered, the rates support teams track, and what the owner labelled or approved.

Windows are whole local days: "7 days" starts at midnight six days before today.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from django.db.models import Aggregate, Count, Exists, FloatField, OuterRef, Q, Subquery
from django.db.models.functions import TruncDate
from django.utils import timezone

from bots.models import Bot
from knowledge.models import FaqEntry
from training.models import Calibration

from .models import Conversation, Message

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


def question_before():
    """A subquery for annotating a bot reply with the customer's question it answered: the
    newest customer message before it in its conversation."""
    return Subquery(
        Message.objects.filter(
            conversation=OuterRef("conversation"), role=Message.Role.USER, pk__lt=OuterRef("pk")
        )
        .order_by("-pk")
        .values("text")[:1]
    )


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
    # The newest matching answers first, then their questions: a subquery in the WHERE clause
    # would run for every candidate row (seconds on 10k messages with stale statistics).
    answers = (
        _messages(bot, range_start(days))
        .filter(role=Message.Role.BOT)
        .filter(Q(path=Message.Path.FALLBACK) | Q(rating=-1))
        .order_by("-created_at", "-pk")[:limit]
    )
    rows = Message.objects.filter(pk__in=answers.values("pk")).annotate(question=question_before())
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
    training.sources wants them: (text, the FAQ entry it should get, or None:
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
    caution = Calibration.of(bot).caution
    return {"caution": caution, "marked": len(asked), "declined": declined, "days": days}


def approved_for_training(bot: Bot) -> list[tuple[int, str, str]]:
    """The bot answers the owner marked good for training, as training.sources wants them:
    (message pk, the customer's question before it, the answer), oldest first. No question
    before it gives "" (the training set reports it as empty)."""
    rows = (
        Message.objects.filter(conversation__bot=bot, role=Message.Role.BOT, training_approved=True)
        .annotate(question=question_before())
        .order_by("created_at", "pk")
        .values_list("pk", "question", "text")
    )
    return [(pk, question or "", text) for pk, question, text in rows]


# Answers that came from the bot's knowledge; FALLBACK and ERROR are the unanswered ones.
ANSWERED_PATHS = (
    Message.Path.DIRECT,
    Message.Path.BEST_MATCH,
    Message.Path.EXTRACTIVE,
    Message.Path.GENERATED,
)


def _percent(n: int, of: int) -> float | None:
    return round(100 * n / of, 1) if of else None


@dataclass(frozen=True)
class ConversationFigures:
    days: int
    conversations: int
    answers: int  # the bot's replies
    answered: int  # replies from its knowledge
    resolved: int  # conversations with no hand-off and no thumbs-down
    handed_off: int
    thumbs_up: int
    thumbs_down: int

    @property
    def answer_rate(self) -> float | None:
        return _percent(self.answered, self.answers)

    @property
    def resolution_rate(self) -> float | None:
        return _percent(self.resolved, self.conversations)

    @property
    def handoff_rate(self) -> float | None:
        return _percent(self.handed_off, self.conversations)


def conversation_figures(*, bot: Bot, days: int) -> ConversationFigures:
    """The rates support teams track, over the conversations started in the window:
    answer rate (replies from knowledge / all replies), resolution rate (conversations without a
    hand-off or a thumbs-down), hand-off rate, and thumbs up and down given to its replies."""
    since = range_start(days)
    thumbs_down = Message.objects.filter(conversation=OuterRef("pk"), rating=-1)
    conversations = Conversation.objects.filter(bot=bot, created_at__gte=since).aggregate(
        total=Count("pk"),
        handed_off=Count("pk", filter=Q(handoff_requested_at__isnull=False)),
        resolved=Count("pk", filter=Q(handoff_requested_at__isnull=True) & ~Exists(thumbs_down)),
    )
    replies = Message.objects.filter(
        conversation__bot=bot, conversation__created_at__gte=since, role=Message.Role.BOT
    ).aggregate(
        total=Count("pk"),
        answered=Count("pk", filter=Q(path__in=ANSWERED_PATHS)),
        up=Count("pk", filter=Q(rating=1)),
        down=Count("pk", filter=Q(rating=-1)),
    )
    return ConversationFigures(
        days=days,
        conversations=conversations["total"],
        answers=replies["total"],
        answered=replies["answered"],
        resolved=conversations["resolved"],
        handed_off=conversations["handed_off"],
        thumbs_up=replies["up"],
        thumbs_down=replies["down"],
    )


def daily_conversations(*, bot: Bot, days: int) -> dict:
    """Conversations started per local day, and how many of them were handed off (zeros kept)."""
    since = range_start(days)
    rows = (
        Conversation.objects.filter(bot=bot, created_at__gte=since)
        .annotate(day=TruncDate("created_at", tzinfo=timezone.get_current_timezone()))
        .values("day")
        .annotate(
            n=Count("pk"), handed_off=Count("pk", filter=Q(handoff_requested_at__isnull=False))
        )
    )
    by_day = {r["day"]: r for r in rows}
    first: date = since.date()
    day_list = [first + timedelta(days=i) for i in range(days)]
    return {
        "labels": [d.isoformat() for d in day_list],
        "conversations": [by_day.get(d, {}).get("n", 0) for d in day_list],
        "handed_off": [by_day.get(d, {}).get("handed_off", 0) for d in day_list],
    }


def unanswered_questions(*, bot: Bot, days: int, limit: int = 200) -> list[tuple[str, int]]:
    """The customer questions behind the newest `limit` fallback replies in the window, as
    (text, times asked), most asked first (case, spacing and end punctuation ignored)."""
    fallbacks = (
        Message.objects.filter(
            conversation__bot=bot,
            created_at__gte=range_start(days),
            role=Message.Role.BOT,
            path=Message.Path.FALLBACK,
        )
        .order_by("-created_at", "-pk")
        .annotate(question=question_before())
        .values_list("question", flat=True)[:limit]
    )
    counts: dict[str, list] = {}
    for text in fallbacks:
        if not text or not text.strip():
            continue
        key = " ".join(text.split()).rstrip("?!. ").casefold()
        counts.setdefault(key, [text.strip(), 0])[1] += 1
    return sorted((tuple(v) for v in counts.values()), key=lambda qv: -qv[1])
