"""Getting started: a new bot's first knowledge (paste an FAQ or upload a file), its ingestion
with live progress, questions to try drawn from its own entries, and the link to share.

One URL serves the page and, for htmx's poll, the progress fragment (286 once every source is
final). Writes go through knowledge.services.source_add, as from the Knowledge page.
"""

from __future__ import annotations

import re

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.core.files.base import ContentFile
from django.shortcuts import redirect, render
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views.decorators.http import require_http_methods
from django_htmx.http import HttpResponseStopPolling

from bots.access import get_bot_for_user
from knowledge.services import source_add

from .overview import suggested_questions

PAGE = "chat/start.html"
# A pasted table whose first line names a question column: parse it as CSV (comma, semicolon
# or tab), anything else as text ("Q: ... / A: ..." pairs, headings with answers, paragraphs).
CSV_HEADER = re.compile(r"^[^\n]*\bquestion\b[^\n]*[,;\t][^\n]*\banswer\b", re.I)


class StartForm(forms.Form):
    text = forms.CharField(
        label=gettext_lazy("Paste your FAQ"),
        required=False,
        widget=forms.Textarea(
            attrs={
                "rows": 9,
                # Q: and A: stay as they are in every language: the parser reads them.
                "placeholder": gettext_lazy(
                    "Q: How long does delivery take?\nA: Two to three working days.\n\n"
                    "Q: Can I return an order?\nA: Yes, within 30 days."
                ),
            }
        ),
        help_text=gettext_lazy(
            "Q: and A: lines, or a table with question and answer columns copied from a "
            "spreadsheet."
        ),
    )
    file = forms.FileField(
        label=gettext_lazy("or upload a file"),
        required=False,
        help_text=gettext_lazy("FAQ CSV, JSON, Markdown, text, PDF or Word."),
    )

    def clean(self):
        cleaned = super().clean()
        if bool(cleaned.get("text", "").strip()) == bool(cleaned.get("file")):
            raise ValidationError(_("Paste your FAQ or choose a file (one of the two)."))
        return cleaned

    def upload(self):
        if self.cleaned_data.get("file"):
            return self.cleaned_data["file"]
        text = self.cleaned_data["text"].strip()
        name = "pasted-faq.csv" if CSV_HEADER.match(text) else "pasted-faq.txt"
        return ContentFile(text.encode(), name=name)


def _context(bot, **extra) -> dict:
    sources = list(bot.sources.order_by("-created_at")[:5])
    return {
        "bot": bot,
        "sources": sources,
        "working": any(not s.is_final for s in sources),
        "ready": any(s.status == s.Status.READY for s in sources),
        "suggested": suggested_questions(bot),
        "form": StartForm(),
        **extra,
    }


@login_required
@require_http_methods(["GET", "POST"])
def start(request, bot_id: int):
    bot = get_bot_for_user(request.user, bot_id)
    if request.method == "POST":
        form = StartForm(request.POST, request.FILES)
        if form.is_valid():
            try:
                source_add(bot=bot, upload=form.upload())
            except ValidationError as exc:
                form.add_error(None, exc)
            else:
                messages.success(request, _("Got it. Your bot is reading it now."))
                return redirect("chat:start", bot_id=bot.pk)
        return render(request, PAGE, _context(bot, form=form), status=422)
    context = _context(bot)
    if request.htmx:
        response = render(request, f"{PAGE}#progress", context)
        return response if context["working"] else HttpResponseStopPolling(response.content)
    return render(request, PAGE, context)
