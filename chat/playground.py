"""The "Test your bot" page: ask a question as a customer would, and see how the answer was made
(path, retrieved chunks with their scores, citations, time). Nothing is recorded as a conversation."""

from __future__ import annotations

from django import forms
from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.shortcuts import render
from django.utils.translation import gettext_lazy as _
from django.views.decorators.http import require_http_methods

from bots.access import get_bot_for_user
from training.selectors import calibration_note

from .answering import answer
from .models import Message
from .overview import suggested_questions

PATH_BADGES = {
    "direct": "ok",
    "best_match": "ok",
    "extractive": "ok",
    "generated": "info",
    "fallback": "warn",
    "error": "bad",
}


class PlaygroundForm(forms.Form):
    question = forms.CharField(
        max_length=settings.CHAT_MAX_MESSAGE_CHARS,
        widget=forms.TextInput(
            attrs={"placeholder": _("Ask what a customer would ask…"), "autofocus": True}
        ),
    )
    generate = forms.BooleanField(
        required=False,
        initial=True,
        label=_("Write answers with the chat model"),
        help_text=_(
            "Off: only decide (direct FAQ answer, would generate, or fallback). The local chat "
            "model is slow: it writes a few words a second."
        ),
    )


@login_required
@require_http_methods(["GET", "POST"])
def playground(request, bot_id: int):
    bot = get_bot_for_user(request.user, bot_id)
    form = PlaygroundForm(request.POST or None)
    result = None
    if request.method == "POST" and form.is_valid():
        result = answer(bot, form.cleaned_data["question"], generate=form.cleaned_data["generate"])
    context = {
        "bot": bot,
        "form": form,
        "result": result,
        # Similarity can be negative; the score bar shows 0-100 %.
        "retrieved": [
            {**row, "bar": max(0, min(100, round(row["score"] * 100)))} for row in result.retrieved
        ]
        if result
        else [],
        "question": form.cleaned_data.get("question") if form.is_bound and form.is_valid() else "",
        "badge": PATH_BADGES.get(result.path, "") if result else "",
        "path_label": Message.Path(result.path).label if result else "",
        "suggested": suggested_questions(bot),
        "calibration_note": calibration_note(bot) if result else "",
    }
    if request.htmx:  # htmx swaps only 2xx responses: form errors come back as 200
        return render(request, "chat/playground.html#panel", context)
    invalid = form.is_bound and not form.is_valid()
    return render(request, "chat/playground.html", context, status=422 if invalid else 200)
