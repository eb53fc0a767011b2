"""Conversations in the dashboard: the filtered list, one transcript, and the CSV export.

The list and the export share one filter (`ConversationFilterForm` + `conversations_filtered`),
so "export" always downloads exactly what the owner is looking at.
"""

from __future__ import annotations

import csv
import itertools
from collections.abc import Iterator

from django import forms
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.db.models import Count, Exists, Max, OuterRef, Q, QuerySet, Subquery
from django.http import StreamingHttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.utils.translation import gettext_lazy as _
from django.views.decorators.http import require_GET, require_POST

from bots.access import get_bot_for_user
from bots.models import Bot
from knowledge.models import FaqEntry

from . import services
from .models import Conversation, LabelledQuestion, Message

PAGE_SIZE = 25

# A spreadsheet runs a cell that starts with one of these as a formula (OWASP "CSV injection").
FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")


class ConversationFilterForm(forms.Form):
    q = forms.CharField(required=False, max_length=200, label=_("Search"))
    path = forms.ChoiceField(
        required=False,
        label=_("Answer"),
        choices=[("", _("Any answer"))] + list(Message.Path.choices),
    )
    rating = forms.ChoiceField(
        required=False,
        label=_("Rating"),
        choices=[("", _("Any rating")), ("up", _("Thumbs up")), ("down", _("Thumbs down"))],
    )
    unanswered = forms.BooleanField(required=False, label=_("Unanswered"))
    handoff = forms.BooleanField(required=False, label=_("Handed off"))

    def filters(self) -> dict:
        """The cleaned filters; an invalid form (e.g. a hand-edited URL) filters nothing."""
        if not self.is_valid():
            return {}
        return {k: v for k, v in self.cleaned_data.items() if v}


def conversations_matching(
    *,
    bot: Bot,
    q: str = "",
    path: str = "",
    rating: str = "",
    unanswered: bool = False,
    handoff: bool = False,
) -> QuerySet[Conversation]:
    """The bot's conversations matching the filters (no annotations: cheap to use as a subquery).

    Message conditions use EXISTS subqueries rather than joins so a conversation never
    appears twice.
    """
    qs = Conversation.objects.filter(bot=bot)
    messages = Message.objects.filter(conversation=OuterRef("pk"))
    if q:
        qs = qs.filter(Q(handoff_email__icontains=q) | Exists(messages.filter(text__icontains=q)))
    if path:
        qs = qs.filter(Exists(messages.filter(path=path)))
    if rating in ("up", "down"):
        qs = qs.filter(Exists(messages.filter(rating=1 if rating == "up" else -1)))
    if unanswered:
        qs = qs.filter(Exists(messages.filter(path=Message.Path.FALLBACK)))
    if handoff:
        qs = qs.filter(handoff_requested_at__isnull=False)
    return qs


def conversations_filtered(*, bot: Bot, **filters) -> QuerySet[Conversation]:
    """`conversations_matching` with what the list shows per row, newest first."""
    first_question = Message.objects.filter(
        conversation=OuterRef("pk"), role=Message.Role.USER
    ).order_by("created_at", "pk")
    return (
        conversations_matching(bot=bot, **filters)
        .annotate(
            message_count=Count("messages"),
            last_at=Max("messages__created_at"),
            fallback_count=Count("messages", filter=Q(messages__path=Message.Path.FALLBACK)),
            up_count=Count("messages", filter=Q(messages__rating=1)),
            down_count=Count("messages", filter=Q(messages__rating=-1)),
            first_question=Subquery(first_question.values("text")[:1]),
        )
        .order_by("-created_at", "-pk")
    )


def get_conversation_for_bot(bot: Bot, public_id) -> Conversation:
    return get_object_or_404(Conversation, bot=bot, public_id=public_id)


def csv_safe(value) -> str:
    """A cell a spreadsheet shows as text, never evaluates (formula prefixes get a quote)."""
    text = "" if value is None else str(value)
    return "'" + text if text.startswith(FORMULA_PREFIXES) else text


EXPORT_HEADER = [
    "conversation_id",
    "time",
    "role",
    "text",
    "path",
    "score",
    "latency_ms",
    "rating",
    "channel",
    "handoff_email",
]


def export_rows(conversations: QuerySet[Conversation]) -> Iterator[list[str]]:
    """One row per message of the given conversations, oldest conversation first."""
    yield EXPORT_HEADER
    messages = (
        Message.objects.filter(conversation__in=conversations.values("pk"))
        .select_related("conversation")
        .order_by("conversation__created_at", "conversation_id", "created_at", "pk")
    )
    rating_names = {1: "up", -1: "down"}
    for m in messages.iterator(chunk_size=500):
        yield [
            str(m.conversation.public_id),
            timezone.localtime(m.created_at).isoformat(timespec="seconds"),
            m.role,
            csv_safe(m.text),
            m.path,
            "" if m.score is None else f"{m.score:.4f}",
            "" if m.latency_ms is None else str(m.latency_ms),
            rating_names.get(m.rating, ""),
            csv_safe(m.conversation.channel),
            csv_safe(m.conversation.handoff_email),
        ]


class _Echo:
    """csv.writer wants a file; this one hands each line back instead of storing it."""

    def write(self, value: str) -> str:
        return value


# --- views ---


@login_required
@require_GET
def conversation_list(request, bot_id: int):
    bot = get_bot_for_user(request.user, bot_id)
    form = ConversationFilterForm(request.GET)
    filters = form.filters()
    page = Paginator(conversations_filtered(bot=bot, **filters), PAGE_SIZE).get_page(
        request.GET.get("page")
    )
    query = request.GET.copy()
    query.pop("page", None)
    context = {
        "bot": bot,
        "form": form,
        "page": page,
        "filtered": bool(filters),
        "query": query.urlencode(),
        "has_any": bool(page.paginator.count) or bot.conversations.exists(),
    }
    template = "chat/conversations.html"
    if request.htmx and request.htmx.target == "conversation-table":
        template += "#table"
    return render(request, template, context)


@login_required
@require_GET
def conversation_detail(request, bot_id: int, public_id):
    bot = get_bot_for_user(request.user, bot_id)
    conversation = get_conversation_for_bot(bot, public_id)
    turns = list(conversation.messages.all())
    answers = [m for m in turns if m.role == Message.Role.BOT]
    context = {
        "bot": bot,
        "conversation": conversation,
        # Not "messages": that name belongs to django.contrib.messages in base.html.
        "turns": turns,
        "answer_count": len(answers),
        "fallback_count": sum(m.path == Message.Path.FALLBACK for m in answers),
        "up_count": sum(m.rating == 1 for m in answers),
        "down_count": sum(m.rating == -1 for m in answers),
        # Labelling a customer question for the mode comparison (chat.compare.label_question).
        "faq_choices": list(
            FaqEntry.objects.filter(bot=bot)
            .order_by("question")
            .values_list("pk", "question")[:500]
        ),
        "labelled": set(LabelledQuestion.objects.filter(bot=bot).values_list("text", flat=True)),
    }
    return render(request, "chat/conversation.html", context)


@login_required
@require_POST
def message_training_mark(request, bot_id: int, public_id, message_id: int):
    """Mark one of the bot's answers good for training ("approved=1") or unmark it; htmx gets
    the button's fragment, a plain form post goes back to the transcript."""
    bot = get_bot_for_user(request.user, bot_id)
    conversation = get_conversation_for_bot(bot, public_id)
    message = get_object_or_404(
        Message, pk=message_id, conversation=conversation, role=Message.Role.BOT
    )
    message = services.message_training_approve(
        message=message, approved=request.POST.get("approved") == "1"
    )
    if request.htmx:
        return render(
            request,
            "chat/conversation.html#training-mark",
            {"bot": bot, "conversation": conversation, "m": message},
        )
    url = redirect("chat:conversation", bot_id=bot.pk, public_id=conversation.public_id).url
    return redirect(f"{url}#m{message.pk}")


@login_required
@require_GET
def conversation_export(request, bot_id: int):
    bot = get_bot_for_user(request.user, bot_id)
    filters = ConversationFilterForm(request.GET).filters()
    writer = csv.writer(_Echo())
    rows = itertools.chain(
        ["\ufeff"],  # a UTF-8 byte order mark, so Excel reads accents and emoji correctly
        (writer.writerow(row) for row in export_rows(conversations_matching(bot=bot, **filters))),
    )
    filename = f"{bot.slug}-conversations-{timezone.localdate():%Y-%m-%d}.csv"
    return StreamingHttpResponse(
        rows,
        content_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )
