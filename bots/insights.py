"""Insights: what customers ask, how the bot answers, and which questions it still misses.

Selectors compute the figures from Conversation/Message rows; `question_groups()` embeds the
unanswered and thumbs-down questions with the bot's own embedding model and groups paraphrases
together, so the owner answers "do you ship to Canada" once, not five times.
"""

from __future__ import annotations

import hashlib
import re
from collections import Counter
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

import numpy as np
from django import forms
from django.contrib import messages as flash
from django.contrib.auth.decorators import login_required
from django.core.cache import cache
from django.core.exceptions import ValidationError
from django.db.models import Aggregate, Count, FloatField, OuterRef, Q, Subquery
from django.db.models.functions import TruncDate
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_GET, require_POST

import providers

from .access import get_bot_for_user
from .models import Bot, Conversation, Message

RANGES = (7, 30, 90)
DEFAULT_RANGE = 30
# Cosine similarity at which a question joins a group (against the group centroid). Measured on
# MiniLM with 19 shop questions in 5 intents: paraphrase pairs 0.48-0.95 (median 0.76), unrelated
# pairs at most 0.40 (median 0.11); thresholds 0.50-0.65 gave the same groups, 0.70 split two.
CLUSTER_THRESHOLD = 0.55
# Embedding is the costly step: cap the questions looked at (most recent first).
MAX_QUESTIONS = 500
EXAMPLES_SHOWN = 5
EMBEDDING_CACHE_SECONDS = 30 * 24 * 3600

PATH_COLOURS = {
    Message.Path.DIRECT: "#059669",
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


# --- figures ---


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


# --- questions the bot missed ---


@dataclass
class WeakQuestion:
    text: str
    asked_at: datetime
    fallback: bool
    thumbs_down: bool


@dataclass
class QuestionGroup:
    questions: list[str]  # distinct phrasings, most asked first
    count: int  # times asked in total
    fallback_count: int = 0
    down_count: int = 0
    last_asked: datetime | None = None
    resolved_by: object | None = None  # the FaqEntry that answers it now
    counts: dict = field(default_factory=dict)

    @property
    def question(self) -> str:
        return self.questions[0]

    @property
    def examples(self) -> list[tuple[str, int]]:
        return [(q, self.counts.get(q, 1)) for q in self.questions[:EXAMPLES_SHOWN]]

    @property
    def more(self) -> int:
        return max(0, len(self.questions) - EXAMPLES_SHOWN)

    @property
    def alternates(self) -> list[str]:
        return self.questions[1:]

    @property
    def key(self) -> str:
        return hashlib.sha1(normalise(self.question).encode()).hexdigest()[:12]


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


def embed_cached(bot: Bot, texts: list[str]) -> np.ndarray:
    """Unit vectors for `texts` from the bot's embedding model; each text is embedded once.

    Vectors are cached (Redis) by model and text, so reloading the page costs no model time.
    """
    # The base model of the bot's settings, not a tuned or still-serving one (grouping questions
    # needs no FAQ-specific model), and the cache key names exactly the model that embedded.
    provider = providers.for_bot(bot)
    model = bot.embedding_model or provider.default_embedding_model()
    keys = {
        t: f"insights:emb:{hashlib.sha1(f'{provider.name}:{model}|{t}'.encode()).hexdigest()}"
        for t in texts
    }
    found = cache.get_many(list(keys.values()))
    missing = [t for t in texts if keys[t] not in found]
    if missing:
        vectors = provider.embed(missing, model=model)
        new = {keys[t]: list(map(float, v)) for t, v in zip(missing, vectors, strict=True)}
        cache.set_many(new, timeout=EMBEDDING_CACHE_SECONDS)
        found.update(new)
    matrix = np.asarray([found[keys[t]] for t in texts], dtype=np.float32)
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    return matrix / np.where(norms == 0, 1, norms)


def cluster(vectors: np.ndarray, threshold: float = CLUSTER_THRESHOLD) -> list[list[int]]:
    """Greedy centroid clustering of unit vectors by cosine similarity.

    Rows are taken in the order given (callers pass the most frequent first, so the most asked
    phrasing seeds its group); each joins the group whose centroid is most similar if that
    similarity reaches `threshold`, else starts a new group.
    """
    groups: list[list[int]] = []
    sums: list[np.ndarray] = []
    for i, v in enumerate(vectors):
        if groups:
            centroids = np.stack(sums)
            centroids /= np.maximum(np.linalg.norm(centroids, axis=1, keepdims=True), 1e-12)
            sims = centroids @ v
            best = int(np.argmax(sims))
            if sims[best] >= threshold:
                groups[best].append(i)
                sums[best] = sums[best] + v
                continue
        groups.append([i])
        sums.append(v.copy())
    return groups


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


def question_groups(
    *, bot: Bot, days: int, threshold: float = CLUSTER_THRESHOLD
) -> list[QuestionGroup]:
    """Unanswered and thumbs-down questions grouped by meaning, most frequent group first.

    Side effect: embeds phrasings not embedded before (cached). Raises ProviderError when the
    bot's embedding provider cannot be reached.
    """
    weak = weak_questions(bot=bot, days=days)
    if not weak:
        return []
    # Phrasings that differ only in case/punctuation are one phrasing, shown in its commonest spelling.
    phrasing: dict[str, dict] = {}
    for w in weak:
        p = phrasing.setdefault(
            normalise(w.text),
            {"spellings": Counter(), "count": 0, "fallback": 0, "down": 0, "last": w.asked_at},
        )
        p["spellings"][w.text] += 1
        p["count"] += 1
        p["fallback"] += w.fallback
        p["down"] += w.thumbs_down
        p["last"] = max(p["last"], w.asked_at)
    for p in phrasing.values():
        p["text"] = p["spellings"].most_common(1)[0][0]
    ordered = sorted(phrasing.values(), key=lambda p: (-p["count"], -p["last"].timestamp()))
    vectors = embed_cached(bot, [p["text"] for p in ordered])
    answered = answered_questions(bot)
    groups = []
    for members in cluster(vectors, threshold):
        items = [ordered[i] for i in members]
        groups.append(
            QuestionGroup(
                questions=[p["text"] for p in items],
                count=sum(p["count"] for p in items),
                fallback_count=sum(p["fallback"] for p in items),
                down_count=sum(p["down"] for p in items),
                last_asked=max(p["last"] for p in items),
                resolved_by=next(
                    (
                        answered[normalise(p["text"])]
                        for p in items
                        if normalise(p["text"]) in answered
                    ),
                    None,
                ),
                counts={p["text"]: p["count"] for p in items},
            )
        )
    # Open groups first (that is the owner's to-do list), then by how often they were asked.
    groups.sort(key=lambda g: (g.resolved_by is not None, -g.count, -g.last_asked.timestamp()))
    return groups


# --- views ---


class AddAnswerForm(forms.Form):
    question = forms.CharField(max_length=1000, widget=forms.TextInput)
    answer = forms.CharField(max_length=5000, widget=forms.Textarea(attrs={"rows": 3}))
    # The group's other phrasings, one hidden input each (a plain Field keeps the list).
    alternate_questions = forms.Field(required=False, widget=forms.MultipleHiddenInput)
    count = forms.IntegerField(required=False, min_value=0, widget=forms.HiddenInput)

    def clean_alternate_questions(self) -> list[str]:
        values = self.cleaned_data.get("alternate_questions") or []
        return [v.strip()[:1000] for v in values if isinstance(v, str) and v.strip()][:50]


def insights_context(bot: Bot, days: int) -> dict:
    paths = answer_paths(bot=bot, days=days)
    answered_paths = (Message.Path.DIRECT, Message.Path.GENERATED)
    activity = daily_activity(bot=bot, days=days)
    context = {
        "bot": bot,
        "days": days,
        "ranges": RANGES,
        "activity": activity,
        "totals": {
            "conversations": sum(activity["conversations"]),
            "messages": sum(activity["messages"]),
        },
        "paths": paths,
        "answers_total": sum(p["count"] for p in paths),
        "answered_count": sum(p["count"] for p in paths if p["path"] in answered_paths),
        "ratings": rating_summary(bot=bot, days=days),
        "latency": latency_by_path(bot=bot, days=days),
        "groups": [],
        "groups_error": "",
    }
    try:
        context["groups"] = question_groups(bot=bot, days=days)
    except providers.ProviderError as exc:
        context["groups_error"] = f"Could not group the questions: {exc}"
    context["answered_percent"] = (
        round(100 * context["answered_count"] / context["answers_total"], 1)
        if context["answers_total"]
        else 0
    )
    context["open_groups"] = sum(g.resolved_by is None for g in context["groups"])
    context["chart_data"] = {
        "activity": activity,
        "paths": [
            {"label": p["label"], "count": p["count"], "colour": p["colour"]}
            for p in paths
            if p["count"]
        ],
    }
    return context


@login_required
@require_GET
def insights(request, bot_id: int):
    bot = get_bot_for_user(request.user, bot_id)
    context = insights_context(bot, parse_range(request.GET.get("days")))
    template = "bots/insights.html"
    if request.htmx and request.htmx.target == "insights-body":
        template += "#body"
    return render(request, template, context)


@login_required
@require_POST
def insights_add_answer(request, bot_id: int):
    """Adds the owner's answer as an FAQ entry (ingested by a worker), from a question group."""
    from knowledge.services import faq_entry_create

    bot = get_bot_for_user(request.user, bot_id)
    form = AddAnswerForm(request.POST)
    entry = None
    if form.is_valid():
        question = form.cleaned_data["question"].strip()
        alternates = [
            q
            for q in form.cleaned_data["alternate_questions"]
            if normalise(q) != normalise(question)
        ]
        try:
            entry = faq_entry_create(
                bot=bot,
                question=question,
                answer=form.cleaned_data["answer"].strip(),
                alternate_questions=tuple(alternates),
            )
        except ValidationError as exc:
            for message in exc.messages:
                form.add_error(None, message)
    questions = [form.data.get("question", "").strip(), *form.data.getlist("alternate_questions")]
    group = QuestionGroup(
        questions=[q for q in questions if q] or ["(empty question)"],
        count=form.cleaned_data.get("count") or 0,
        resolved_by=entry,
    )
    if request.htmx:
        return render(
            request,
            "bots/insights.html#group",
            {"bot": bot, "group": group, "form": form, "just_added": entry is not None},
            status=200 if entry else 422,
        )
    if entry:
        flash.success(
            request,
            f"Added the answer to “{entry.question}”. The bot uses it as soon as it is indexed.",
        )
    else:
        flash.error(
            request,
            "The answer was not added: "
            + "; ".join(m for errors in form.errors.values() for m in errors),
        )
    return redirect(reverse("bots:insights", args=[bot.pk]) + "#groups")
