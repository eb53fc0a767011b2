"""The Compare modes page: start a comparison of RAG, fine-tuned and both on the bot's own
questions, watch it, read the table, charts and recommendation, switch mode in one click.
The logic is in chat.evaluation; these views check access, call one service and render."""

from __future__ import annotations

import csv
import io

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.db import IntegrityError
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_GET, require_http_methods, require_POST
from django_htmx.http import HttpResponseStopPolling

from bots.access import get_bot_for_user
from bots.models import Bot, Conversation, Message

from . import evaluation as ev
from .models import Evaluation, LabelledQuestion

PAGE = "chat/compare.html"
LEVELS = [(0, "Not at all"), (1, "A little"), (2, "Quite"), (3, "A lot")]
DECLINE_WORDS = {"should decline", "decline", "-", "none", "no answer"}
MAX_UPLOAD_BYTES = 1_000_000


class PrioritiesForm(forms.Form):
    accuracy = forms.TypedChoiceField(
        choices=LEVELS, coerce=int, initial=3, label="Right answers matter"
    )
    speed = forms.TypedChoiceField(choices=LEVELS, coerce=int, initial=1, label="Speed matters")
    cost = forms.TypedChoiceField(choices=LEVELS, coerce=int, initial=1, label="Cost matters")
    changes = forms.TypedChoiceField(
        choices=LEVELS, coerce=int, initial=1, label="My knowledge changes often"
    )


class UploadForm(forms.Form):
    file = forms.FileField(
        label="Questions (CSV)",
        help_text='One question a line, then the FAQ question it should get, or "should decline".',
    )


def evaluation_view(evaluation: Evaluation | None) -> dict:
    """What the results card shows: a row per mode, the comparisons in words, chart data, and
    the questions each mode got wrong (with a link to fix the entry)."""
    if evaluation is None or evaluation.status != Evaluation.Status.DONE:
        return {}
    from knowledge.models import FaqEntry

    results = evaluation.results
    rows = [{"mode": m, "name": ev._name(m), **results[m]} for m in evaluation.modes]
    gold_ids = {a["gold"] for a in evaluation.answers if a.get("gold")}
    questions = dict(FaqEntry.objects.filter(pk__in=gold_ids).values_list("pk", "question"))
    misses = {m: [] for m in evaluation.modes}
    for a in evaluation.answers:
        wrong = (a["gold"] and not a["right"]) or (not a["gold"] and a["answered"])
        if wrong and len(misses[a["mode"]]) < 25:
            misses[a["mode"]].append({**a, "expected": questions.get(a["gold"], "")})
    chart = {
        "modes": [r["name"] for r in rows],
        "right": [r["right"] for r in rows],
        "wrong": [r["wrong"] for r in rows],
        "declined": [r["wrongly_declined"] for r in rows],
        "accuracy": [r["delivered_acc"] for r in rows],
        "ci": [r["delivered_ci"] for r in rows],
        "p95": [r["total_p95_ms"] for r in rows],
    }
    return {
        "rows": rows,
        "comparisons": results.get("_comparisons", []),
        "misses": [(ev._name(m), items) for m, items in misses.items()],
        "chart": chart,
    }


def _context(bot: Bot, **extra) -> dict:
    evaluations = list(Evaluation.objects.filter(bot=bot).order_by("-created_at", "-pk")[:10])
    questions = ev.question_set(bot)
    origins: dict[str, int] = {}
    for q in questions:
        origins[q["origin"]] = origins.get(q["origin"], 0) + 1
    return {
        "bot": bot,
        "latest": evaluations[0] if evaluations else None,
        "past": evaluations[1:],
        "modes": [(m, ev._name(m), why) for m, why in ev.available_modes(bot).items()],
        "origins": origins,
        "labelled_count": LabelledQuestion.objects.filter(bot=bot).count(),
        "priorities_form": PrioritiesForm(),
        "upload_form": UploadForm(),
        **extra,
        "view": evaluation_view(extra.get("latest") or (evaluations[0] if evaluations else None)),
    }


@login_required
@require_http_methods(["GET", "POST"])
def compare(request, bot_id: int):
    bot = get_bot_for_user(request.user, bot_id)
    if request.method == "POST":
        form = PrioritiesForm(request.POST)
        if form.is_valid():
            try:
                ev.evaluation_start(bot=bot, priorities=form.cleaned_data)
            except ValidationError as exc:
                messages.error(request, " ".join(exc.messages))
            else:
                messages.success(request, "Comparison started.")
        return redirect("chat:compare", bot_id=bot.pk)
    return render(request, PAGE, _context(bot))


@login_required
@require_GET
def evaluation_panel(request, bot_id: int, evaluation_id: int):
    """The latest comparison's card; polled by htmx while it runs."""
    bot = get_bot_for_user(request.user, bot_id)
    evaluation = get_object_or_404(Evaluation, pk=evaluation_id, bot=bot)
    if not request.htmx:
        return render(request, PAGE, _context(bot, latest=evaluation))
    response = render(
        request,
        f"{PAGE}#evaluation",
        {"bot": bot, "latest": evaluation, "view": evaluation_view(evaluation)},
    )
    if not evaluation.is_active:
        response.status_code = HttpResponseStopPolling.status_code
    return response


@login_required
@require_POST
def evaluation_cancel(request, bot_id: int, evaluation_id: int):
    bot = get_bot_for_user(request.user, bot_id)
    evaluation = get_object_or_404(Evaluation, pk=evaluation_id, bot=bot)
    ev.evaluation_cancel(evaluation=evaluation)
    if request.htmx:
        return render(request, f"{PAGE}#evaluation", {"bot": bot, "latest": evaluation})
    return redirect("chat:compare", bot_id=bot.pk)


@login_required
@require_POST
def switch_mode(request, bot_id: int):
    bot = get_bot_for_user(request.user, bot_id)
    try:
        ev.mode_switch(bot=bot, mode=request.POST.get("mode", ""))
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages))
    else:
        messages.success(request, f"{bot.name} now answers in {ev._name(bot.mode)} mode.")
    return redirect("chat:compare", bot_id=bot.pk)


@login_required
@require_POST
def upload_questions(request, bot_id: int):
    bot = get_bot_for_user(request.user, bot_id)
    form = UploadForm(request.POST, request.FILES)
    if not form.is_valid():
        return render(request, PAGE, _context(bot, upload_form=form), status=422)
    upload = form.cleaned_data["file"]
    if upload.size > MAX_UPLOAD_BYTES:
        form.add_error("file", "The file is over 1 MB; upload at most a few thousand questions.")
        return render(request, PAGE, _context(bot, upload_form=form), status=422)
    added, problems = labelled_questions_import(bot=bot, data=upload.read())
    if added:
        messages.success(request, f"Added {added} question{'s' if added != 1 else ''}.")
    for problem in problems[:20]:
        messages.warning(request, problem)
    if not added and not problems:
        messages.warning(request, "The file had no questions.")
    return redirect("chat:compare", bot_id=bot.pk)


def labelled_questions_import(*, bot: Bot, data: bytes) -> tuple[int, list[str]]:
    """Rows `question, expected FAQ question | should decline`; bad rows are reported by line
    and skipped, the good ones kept. Returns (added, problems)."""
    from knowledge.models import FaqEntry

    text = data.decode("utf-8-sig", errors="replace")
    by_question = {
        q.strip().lower(): pk
        for pk, q in FaqEntry.objects.filter(bot=bot).values_list("pk", "question")
    }
    added, problems = 0, []
    for line, row in enumerate(csv.reader(io.StringIO(text)), start=1):
        if not row or not any(cell.strip() for cell in row):
            continue
        question = row[0].strip()
        expected = row[1].strip() if len(row) > 1 else ""
        if line == 1 and question.lower() == "question":
            continue  # a header
        if not question or not expected:
            problems.append(f"Line {line}: needs a question and the expected answer.")
            continue
        decline = expected.lower() in DECLINE_WORDS
        entry = None if decline else by_question.get(expected.lower())
        if not decline and entry is None:
            problems.append(
                f"Line {line}: no FAQ entry asks “{expected[:80]}”; use an entry's question "
                "exactly as it is written, or “should decline”."
            )
            continue
        try:
            LabelledQuestion.objects.update_or_create(
                bot=bot,
                text=question[:2000],
                defaults={"faq_entry_id": entry, "should_decline": decline},
            )
        except IntegrityError:
            problems.append(f"Line {line}: could not be saved.")
            continue
        added += 1
    return added, problems


@login_required
@require_POST
def label_question(request, bot_id: int, public_id):
    """From a conversation: the customer's question should have got this entry, or a refusal."""
    bot = get_bot_for_user(request.user, bot_id)
    conversation = get_object_or_404(Conversation, bot=bot, public_id=public_id)
    message = get_object_or_404(
        Message, pk=request.POST.get("message"), conversation=conversation, role=Message.Role.USER
    )
    expected = request.POST.get("expected", "")
    decline = expected == "decline"
    entry_id = None
    if not decline:
        from knowledge.models import FaqEntry

        entry_id = (
            FaqEntry.objects.filter(bot=bot, pk=expected).values_list("pk", flat=True).first()
            if expected.isdigit()
            else None
        )
        if entry_id is None:
            messages.error(request, "Choose the FAQ entry it should have got, or “should decline”.")
            return redirect("chat:conversation", bot_id=bot.pk, public_id=conversation.public_id)
    LabelledQuestion.objects.update_or_create(
        bot=bot,
        text=message.text[:2000],
        defaults={
            "faq_entry_id": entry_id,
            "should_decline": decline,
            "origin": LabelledQuestion.Origin.CONVERSATION,
        },
    )
    messages.success(request, "Labelled: it is part of your next comparison.")
    return redirect("chat:conversation", bot_id=bot.pk, public_id=conversation.public_id)
