"""Insights page: what customers ask, how the bot answers, and which questions it still misses
(figures in chat.selectors, grouping in chat.clustering)."""

from __future__ import annotations

from django import forms
from django.contrib import messages as flash
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET, require_POST

import providers
from bots.access import get_bot_for_user
from bots.models import Bot
from knowledge.services import faq_entry_create

from .clustering import QuestionGroup, question_groups
from .models import Message
from .selectors import (
    RANGES,
    answer_paths,
    daily_activity,
    latency_by_path,
    normalise,
    parse_range,
    rating_summary,
)


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
    answered_paths = (
        Message.Path.DIRECT,
        Message.Path.BEST_MATCH,
        Message.Path.EXTRACTIVE,
        Message.Path.GENERATED,
    )
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
        context["groups_error"] = _("Could not group the questions: %(error)s") % {"error": exc}
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
    template = "chat/insights.html"
    if request.htmx and request.htmx.target == "insights-body":
        template += "#body"
    return render(request, template, context)


@login_required
@require_POST
def insights_add_answer(request, bot_id: int):
    """Adds the owner's answer as an FAQ entry (ingested by a worker), from a question group."""
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
            "chat/insights.html#group",
            {"bot": bot, "group": group, "form": form, "just_added": entry is not None},
            status=200 if entry else 422,
        )
    if entry:
        flash.success(
            request,
            _("Added the answer to “%(question)s”. The bot uses it as soon as it is indexed.")
            % {"question": entry.question},
        )
    else:
        flash.error(
            request,
            _("The answer was not added: %(errors)s")
            % {"errors": "; ".join(m for errors in form.errors.values() for m in errors)},
        )
    return redirect(reverse("chat:insights", args=[bot.pk]) + "#groups")
