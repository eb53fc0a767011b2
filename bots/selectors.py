"""Reads for a bot's Overview: how its conversations went (Conversation and Message live here).

Windows are whole local days, like the Insights page's: "7 days" starts at midnight six days
before today.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta

from django.db.models import Count, Exists, OuterRef, Q, Subquery
from django.db.models.functions import TruncDate
from django.utils import timezone

from .models import Bot, Conversation, Message

# Answers that came from the bot's knowledge; FALLBACK and ERROR are the unanswered ones.
ANSWERED_PATHS = (
    Message.Path.DIRECT,
    Message.Path.BEST_MATCH,
    Message.Path.EXTRACTIVE,
    Message.Path.GENERATED,
)


def window_start(days: int) -> datetime:
    first_day = timezone.localdate() - timedelta(days=days - 1)
    return timezone.make_aware(datetime.combine(first_day, datetime.min.time()))


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
    since = window_start(days)
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
    since = window_start(days)
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
    question = (
        Message.objects.filter(
            conversation=OuterRef("conversation"), role=Message.Role.USER, pk__lt=OuterRef("pk")
        )
        .order_by("-pk")
        .values("text")[:1]
    )
    fallbacks = (
        Message.objects.filter(
            conversation__bot=bot,
            created_at__gte=window_start(days),
            role=Message.Role.BOT,
            path=Message.Path.FALLBACK,
        )
        .order_by("-created_at", "-pk")
        .annotate(question=Subquery(question))
        .values_list("question", flat=True)[:limit]
    )
    counts: dict[str, list] = {}
    for text in fallbacks:
        if not text or not text.strip():
            continue
        key = " ".join(text.split()).rstrip("?!. ").casefold()
        counts.setdefault(key, [text.strip(), 0])[1] += 1
    return sorted((tuple(v) for v in counts.values()), key=lambda qv: -qv[1])
