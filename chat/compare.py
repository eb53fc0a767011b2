"""The Compare modes page: start a comparison of RAG, fine-tuned and both on the bot's own
questions, watch it, read the table, charts and recommendation, switch mode in one click.
The logic is in chat.evaluation; these views check access, call one service and render."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import NamedTuple

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.db import transaction
from django.http import Http404
from django.shortcuts import get_object_or_404, redirect, render
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy, ngettext
from django.views.decorators.http import require_GET, require_http_methods, require_POST
from django_htmx.http import HttpResponseStopPolling

from bots.access import get_bot_for_user
from bots.models import Bot
from knowledge.faq_files import csv_rows
from knowledge.models import FaqEntry
from knowledge.parsing import decode_text
from training.calibration import calibration_request

from . import evaluation as ev
from .models import Conversation, Evaluation, LabelledQuestion, Message

PAGE = "chat/compare.html"
LEVELS = [
    (0, gettext_lazy("Not at all")),
    (1, gettext_lazy("A little")),
    (2, gettext_lazy("Quite")),
    (3, gettext_lazy("A lot")),
]
DECLINE_WORDS = {"should decline", "decline", "-", "none", "no answer"}
# ... and the words the upload's help text gives in the owner's language (locale/).
DECLINE_WORDS |= {"afwijzen", "ablehnen", "refuser", "rechazar"}
MAX_UPLOAD_BYTES = 1_000_000
# A comparison asks at most ev.MAX_QUESTIONS; more rows than this cannot be a question set, and
# a 45,505-row file held a web worker for 80 s.
MAX_UPLOAD_ROWS = 1_000
MAX_PROBLEMS_SHOWN = 20
QUESTION_MAX_CHARS = LabelledQuestion._meta.get_field("text").max_length


class PrioritiesForm(forms.Form):
    accuracy = forms.TypedChoiceField(
        choices=LEVELS, coerce=int, initial=3, label=gettext_lazy("Right answers matter")
    )
    speed = forms.TypedChoiceField(
        choices=LEVELS, coerce=int, initial=1, label=gettext_lazy("Speed matters")
    )
    cost = forms.TypedChoiceField(
        choices=LEVELS, coerce=int, initial=1, label=gettext_lazy("Cost matters")
    )
    changes = forms.TypedChoiceField(
        choices=LEVELS, coerce=int, initial=1, label=gettext_lazy("My knowledge changes often")
    )


class UploadForm(forms.Form):
    file = forms.FileField(
        label=gettext_lazy("Questions (CSV)"),
        help_text=gettext_lazy(
            'One question a line, then the FAQ question it should get, or "should decline" '
            "(comma, semicolon or tab between them; at most 1,000 rows)."
        ),
    )


def evaluation_view(evaluation: Evaluation | None) -> dict:
    """What the results card shows: a row per mode, the comparisons in words, chart data, and
    the questions each mode got wrong (with a link to fix the entry)."""
    if evaluation is None or evaluation.status != Evaluation.Status.DONE:
        return {}

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
    comparisons = [
        {**c, "words": ev.in_plain_words(ev._name(c["a"]), ev._name(c["b"]), c)}
        for c in results.get("_comparisons", [])
    ]
    return {
        "rows": rows,
        "comparisons": comparisons,
        "recommendation": ev.recommendation_in_words(results, evaluation.recommendation),
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
                messages.success(request, _("Comparison started."))
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
        messages.success(
            request,
            _("%(bot)s now answers in %(mode)s mode.")
            % {"bot": bot.name, "mode": ev._name(bot.mode)},
        )
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
        form.add_error(
            "file",
            _("The file is over 1 MB; upload at most %(rows)s questions.")
            % {"rows": f"{MAX_UPLOAD_ROWS:,}"},
        )
        return render(request, PAGE, _context(bot, upload_form=form), status=422)
    try:
        result = labelled_questions_import(bot=bot, data=upload.read())
    except ValidationError as exc:
        form.add_error("file", exc)
        return render(request, PAGE, _context(bot, upload_form=form), status=422)
    for level, text in result.summary():
        messages.add_message(request, level, text)
    return redirect("chat:compare", bot_id=bot.pk)


@dataclass
class ImportResult:
    """What an upload kept and why the rest was not: the owner reads it as messages."""

    added: int = 0
    updated: int = 0  # questions uploaded before: their expected answer was replaced
    repeated: int = 0  # a question earlier in the file, or already in the comparison
    over_limit: int = 0  # no room left in a comparison's MAX_QUESTIONS
    room: int = 0  # room there was for new questions
    problems: list[str] = field(default_factory=list)

    def summary(self) -> list[tuple[int, str]]:
        """The messages for the owner: what was kept, what was skipped, then the problem rows."""
        out = self._kept() + self._skipped() + self._problem_lines()
        if not out:
            out.append((messages.WARNING, _("The file had no questions.")))
        return out

    def _kept(self) -> list[tuple[int, str]]:
        out = []
        if self.added:
            out.append(
                (
                    messages.SUCCESS,
                    ngettext("Added %(n)s question.", "Added %(n)s questions.", self.added)
                    % {"n": f"{self.added:,}"},
                )
            )
        if self.updated:
            out.append(
                (
                    messages.INFO,
                    ngettext(
                        "Updated %(n)s question uploaded before (its expected answer).",
                        "Updated %(n)s questions uploaded before (their expected answers).",
                        self.updated,
                    )
                    % {"n": f"{self.updated:,}"},
                )
            )
        return out

    def _skipped(self) -> list[tuple[int, str]]:
        out = []
        if self.repeated:
            out.append(
                (
                    messages.WARNING,
                    ngettext(
                        "Skipped %(n)s repeated question (earlier in the file, or already in "
                        "the comparison).",
                        "Skipped %(n)s repeated questions (earlier in the file, or already in "
                        "the comparison).",
                        self.repeated,
                    )
                    % {"n": f"{self.repeated:,}"},
                )
            )
        if self.over_limit:
            out.append(
                (
                    messages.WARNING,
                    ngettext(
                        "%(n)s question was not kept: a comparison asks at most %(max)s "
                        "questions, including %(unrelated)s unrelated ones, and there was room "
                        "for %(room)s more.",
                        "%(n)s questions were not kept: a comparison asks at most %(max)s "
                        "questions, including %(unrelated)s unrelated ones, and there was room "
                        "for %(room)s more.",
                        self.over_limit,
                    )
                    % {
                        "n": f"{self.over_limit:,}",
                        "max": ev.MAX_QUESTIONS,
                        "unrelated": ev.UNRELATED_SAMPLE,
                        "room": self.room,
                    },
                )
            )
        return out

    def _problem_lines(self) -> list[tuple[int, str]]:
        out = [(messages.WARNING, problem) for problem in self.problems[:MAX_PROBLEMS_SHOWN]]
        if len(self.problems) > MAX_PROBLEMS_SHOWN:
            more = len(self.problems) - MAX_PROBLEMS_SHOWN
            out.append(
                (
                    messages.WARNING,
                    ngettext(
                        "…and %(n)s more line with a problem.",
                        "…and %(n)s more lines with a problem.",
                        more,
                    )
                    % {"n": f"{more:,}"},
                )
            )
        return out


def _rows(data: bytes) -> list[tuple[int, list[str] | None, str]]:
    """The file's non-empty rows, read like the Knowledge tab's CSV import (encoding and
    delimiter detected); ValidationError for a file that is not text or has too many rows."""
    rows = []
    for line, cells, error in csv_rows(decode_text(data)):
        if cells is not None and not any(cells):
            continue
        rows.append((line, cells, error))
        # Each row costs a lookup and a write: the bound keeps an upload a request, not a job.
        if len(rows) > MAX_UPLOAD_ROWS + 1:  # + 1: a header row
            raise ValidationError(
                _(
                    "The file has more than %(rows)s rows; a comparison asks at most %(max)s "
                    "questions. Upload at most %(rows)s rows."
                )
                % {"rows": f"{MAX_UPLOAD_ROWS:,}", "max": ev.MAX_QUESTIONS}
            )
    return rows


class _Label(NamedTuple):
    """One readable row of an upload: the question and what it should get."""

    question: str
    entry: int | None  # the expected FAQ entry's id; None when the bot should decline
    decline: bool


def _read_row(line: int, cells: list[str] | None, error: str, by_question: dict) -> _Label | str:
    """The row's label, or the problem to report for its line. `by_question`: the bot's FAQ
    entry ids by their question, lower-cased."""
    if cells is None:
        return _("Line %(line)s: unreadable row (%(error)s).") % {"line": line, "error": error}
    question = cells[0]
    expected = cells[1] if len(cells) > 1 else ""
    if not question or not expected:
        return _("Line %(line)s: needs a question and the expected answer.") % {"line": line}
    if len(question) > QUESTION_MAX_CHARS:
        return _("Line %(line)s: the question is over %(max)s characters.") % {
            "line": line,
            "max": f"{QUESTION_MAX_CHARS:,}",
        }
    decline = expected.lower() in DECLINE_WORDS
    entry = None if decline else by_question.get(expected.lower())
    if not decline and entry is None:
        return _(
            "Line %(line)s: no FAQ entry asks “%(expected)s”; use an entry's question "
            "exactly as it is written, or “should decline”."
        ) % {"line": line, "expected": expected[:80]}
    return _Label(question, entry, decline)


def labelled_questions_import(*, bot: Bot, data: bytes) -> ImportResult:
    """Rows `question, expected FAQ question | should decline`, any encoding and delimiter the
    Knowledge tab's CSV import reads. Bad rows are reported by line and skipped; a question
    already labelled gets the new expectation; new questions are kept while a comparison has
    room for them (MAX_QUESTIONS less the unrelated sample and the questions it has). Raises
    ValidationError (nothing saved) for a file that is not text or over MAX_UPLOAD_ROWS rows.
    Writes in two bulk queries."""

    rows = _rows(data)
    by_question = {
        q.strip().lower(): pk
        for pk, q in FaqEntry.objects.filter(bot=bot).values_list("pk", "question")
    }
    labelled = {q.text.lower(): q for q in LabelledQuestion.objects.filter(bot=bot)}
    in_comparison = {q["text"].lower() for q in ev.question_set(bot, unrelated=0)}
    result = ImportResult(room=max(0, ev.MAX_QUESTIONS - ev.UNRELATED_SAMPLE - len(in_comparison)))
    seen: set[str] = set()
    new: list[LabelledQuestion] = []
    changed: list[LabelledQuestion] = []
    for index, (line, cells, error) in enumerate(rows):
        if index == 0 and cells is not None and cells[0].lower() == "question":
            continue  # a header
        label = _read_row(line, cells, error, by_question)
        if isinstance(label, str):
            result.problems.append(label)
            continue
        key = label.question.lower()
        if key in seen:
            result.repeated += 1
            continue
        seen.add(key)
        if key in labelled:
            row = labelled[key]
            row.faq_entry_id, row.should_decline = label.entry, label.decline
            changed.append(row)
        elif key in in_comparison:
            result.repeated += 1  # a held-out phrasing of an FAQ entry
        elif len(new) < result.room:
            new.append(
                LabelledQuestion(
                    bot=bot,
                    text=label.question,
                    faq_entry_id=label.entry,
                    should_decline=label.decline,
                )
            )
        else:
            result.over_limit += 1
    _save_labels(bot, new, changed)
    result.added, result.updated = len(new), len(changed)
    return result


def _save_labels(bot: Bot, new: list[LabelledQuestion], changed: list[LabelledQuestion]) -> None:
    with transaction.atomic():
        # ignore_conflicts: an upload racing this one may have saved the same question.
        LabelledQuestion.objects.bulk_create(new, ignore_conflicts=True)
        LabelledQuestion.objects.bulk_update(changed, ["faq_entry", "should_decline"])
        if new or changed:  # the owner's labels move the bot's refusal line (calibration)
            calibration_request(bot.pk)


@login_required
@require_POST
def label_question(request, bot_id: int, public_id):
    """From a conversation: the customer's question should have got this entry, or a refusal."""
    bot = get_bot_for_user(request.user, bot_id)
    conversation = get_object_or_404(Conversation, bot=bot, public_id=public_id)
    message_id = request.POST.get("message", "")
    if not message_id.isdigit():  # not a message id at all: the same 404 as another's message
        raise Http404(_("No such message in this conversation."))
    message = get_object_or_404(
        Message, pk=int(message_id), conversation=conversation, role=Message.Role.USER
    )
    expected = request.POST.get("expected", "")
    decline = expected == "decline"
    entry_id = None
    if not decline:
        entry_id = (
            FaqEntry.objects.filter(bot=bot, pk=expected).values_list("pk", flat=True).first()
            if expected.isdigit()
            else None
        )
        if entry_id is None:
            messages.error(
                request, _("Choose the FAQ entry it should have got, or “should decline”.")
            )
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
    calibration_request(bot.pk)  # after commit: the label teaches the next calibration too
    messages.success(
        request,
        _(
            "Labelled: it is part of your next comparison and teaches the bot where to draw the line."
        ),
    )
    return redirect("chat:conversation", bot_id=bot.pk, public_id=conversation.public_id)
