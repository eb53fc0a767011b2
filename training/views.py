"""Training dashboard pieces. The retrieval-tuning card lives on the knowledge page; these views
serve its htmx fragment (polled while a job runs) and its two buttons. The Fine-tuning page (a
bot tab) builds and checks a chat training set, launches, watches, cancels, deploys and rolls
back runs; training.chat_tuning holds the logic."""

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.http import HttpResponse, HttpResponseBadRequest
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils.translation import gettext as _
from django.utils.translation import ngettext
from django.views.decorators.http import require_GET, require_POST
from django_htmx.http import HttpResponseStopPolling

from bots.access import get_bot_for_user

from . import calibration, chat_tuning, documents, retrieval
from .forms import CautionForm, DocumentPairForm, LaunchForm, ThresholdsForm
from .models import ChatTuning, DocumentPair
from .selectors import (
    calibration_panel_context,
    chat_tuning_context,
    document_pairs_context,
    loss_chart,
    tuning_panel_context,
)

PANEL = "training/tuning.html#panel"


def _panel_or_page(request, bot):
    if request.htmx:
        return render(request, PANEL, tuning_panel_context(bot))
    return redirect("knowledge:page", bot_id=bot.pk)


@login_required
@require_GET
def tuning_panel(request, bot_id: int):
    bot = get_bot_for_user(request.user, bot_id)
    return _panel_or_page(request, bot)


@login_required
@require_POST
def tuning_start(request, bot_id: int):
    """Tune now (also turns automatic tuning back on)."""
    bot = get_bot_for_user(request.user, bot_id)
    reason = retrieval.tuning_unavailable_reason(bot)
    if reason:
        messages.error(request, reason)
    else:
        if not bot.retrieval_tuning:
            bot.retrieval_tuning = True
            bot.save(update_fields=["retrieval_tuning"])
        retrieval.tuning_request(bot=bot, reason="requested by the owner", force=True)
        if not request.htmx:
            messages.success(request, _("Retrieval tuning queued."))
    return _panel_or_page(request, bot)


@login_required
@require_POST
def tuning_off(request, bot_id: int):
    bot = get_bot_for_user(request.user, bot_id)
    retrieval.tuning_disable(bot=bot)
    bot.refresh_from_db()
    if not request.htmx:
        messages.success(
            request,
            _("Retrieval tuning is off; your knowledge is re-embedded with the base model."),
        )
    return _panel_or_page(request, bot)


# --- Fine-tuning page -----------------------------------------------------------------------------

CHAT_PAGE = "training/chat_tuning.html"


def _run_for_user(user, bot_id: int, run_id: int) -> tuple:
    bot = get_bot_for_user(user, bot_id)
    return bot, get_object_or_404(ChatTuning, pk=run_id, bot=bot)


def _choice(value: str, choices, default: str) -> str:
    return value if value in dict(choices) else default


def _default_mode(bot) -> str:
    return bot.mode if bot.mode in dict(ChatTuning.Mode.choices) else "finetuned"


def _build_args(request, bot) -> tuple[str, str]:
    source = request.POST if request.method == "POST" else request.GET
    return (
        _choice(source.get("mode", ""), ChatTuning.Mode.choices, _default_mode(bot)),
        _choice(source.get("backend", ""), ChatTuning.Backend.choices, "local"),
    )


def _chat_page_context(request, bot) -> dict:
    context = chat_tuning_context(bot)
    mode, backend = _build_args(request, bot)
    context.update(mode=mode, backend=backend)
    if context["run"]:
        context["chart"] = loss_chart(context["run"])
    return context


def _chat_page_refused(request, bot, errors: list[str], *, status: int = 422):
    """The Fine-tuning page again with what was refused, and nothing changed."""
    for error in errors:
        messages.error(request, error)
    return render(request, CHAT_PAGE, _chat_page_context(request, bot), status=status)


@login_required
@require_GET
def chat_tuning_page(request, bot_id: int):
    """The page; ?build=1 builds the training set and shows its issues, estimate and preview."""
    bot = get_bot_for_user(request.user, bot_id)
    context = _chat_page_context(request, bot)
    mode, backend = context["mode"], context["backend"]
    if request.GET.get("build"):
        context["preview"] = chat_tuning.training_set_preview(bot=bot, mode=mode, backend=backend)
        context["unavailable"] = chat_tuning.backend_unavailable_reason(backend)
    if request.htmx and request.GET.get("build"):
        return render(request, f"{CHAT_PAGE}#build", context)
    return render(request, CHAT_PAGE, context)


@login_required
@require_GET
def chat_tuning_run(request, bot_id: int, run_id: int):
    """The run's live card (polled while it is active; 286 stops the polling once final)."""
    bot, run = _run_for_user(request.user, bot_id, run_id)
    if not request.htmx:
        return redirect("training:chat_tuning", bot_id=bot.pk)
    response = render(
        request, f"{CHAT_PAGE}#run", {"bot": bot, "run": run, "chart": loss_chart(run)}
    )
    if run.is_final:
        stop = HttpResponseStopPolling(response.content)
        stop["HX-Refresh"] = "true"  # the versions table and "Answering now" change too
        return stop
    return response


@login_required
@require_GET
def chat_tuning_download(request, bot_id: int):
    """The training set as JSONL, in the chat fine-tuning format OpenAI's API accepts."""
    bot = get_bot_for_user(request.user, bot_id)
    mode, backend = _build_args(request, bot)
    preview = chat_tuning.training_set_preview(bot=bot, mode=mode, backend=backend)
    response = HttpResponse(preview["set"].jsonl(), content_type="application/jsonl")
    response["Content-Disposition"] = f'attachment; filename="{bot.slug}-{mode}-training.jsonl"'
    return response


@login_required
@require_POST
def chat_tuning_launch(request, bot_id: int):
    bot = get_bot_for_user(request.user, bot_id)
    form = LaunchForm(request.POST, default_mode=_default_mode(bot))
    if not form.is_valid():  # the page posts its own choices: anything else is refused
        return _chat_page_refused(request, bot, _form_errors(form))
    mode, backend = form.cleaned_data["mode"], form.cleaned_data["backend"]
    try:
        run = chat_tuning.chat_tuning_launch(bot=bot, mode=mode, backend=backend)
    except ValidationError as exc:
        for message in exc.messages:
            messages.error(request, message)
    else:
        messages.success(request, _("Fine-tuning run %(run)s queued.") % {"run": run.pk})
    return redirect("training:chat_tuning", bot_id=bot.pk)


@login_required
@require_POST
def chat_tuning_cancel(request, bot_id: int, run_id: int):
    bot, run = _run_for_user(request.user, bot_id, run_id)
    run = chat_tuning.chat_tuning_cancel(run=run)
    if request.htmx:
        return render(
            request, f"{CHAT_PAGE}#run", {"bot": bot, "run": run, "chart": loss_chart(run)}
        )
    messages.success(request, _("Run %(run)s: cancelling.") % {"run": run.pk})
    return redirect("training:chat_tuning", bot_id=bot.pk)


@login_required
@require_POST
def chat_tuning_deploy(request, bot_id: int, run_id: int):
    bot, run = _run_for_user(request.user, bot_id, run_id)
    try:
        run = chat_tuning.chat_tuning_deploy(run=run)
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages))
    else:
        messages.success(
            request,
            _("Run %(run)s deployed: %(bot)s answers with it (%(mode)s).")
            % {"run": run.pk, "bot": bot.name, "mode": run.get_mode_display()},
        )
    return redirect("training:chat_tuning", bot_id=bot.pk)


@login_required
@require_POST
def chat_tuning_undeploy(request, bot_id: int):
    bot = get_bot_for_user(request.user, bot_id)
    chat_tuning.chat_tuning_undeploy(bot=bot)
    messages.success(
        request, _("%(bot)s answers with the base model and retrieval again.") % {"bot": bot.name}
    )
    return redirect("training:chat_tuning", bot_id=bot.pk)


# --- Document pairs (on the Fine-tuning page) ---------------------------------------------------


def _pairs_page(bot):
    return redirect(reverse("training:chat_tuning", args=[bot.pk]) + "#ct-pairs")


@login_required
@require_POST
def document_pairs_propose(request, bot_id: int):
    """Propose question/answer pairs from the bot's documents again (unreviewed ones are
    replaced; accepted and rejected ones stay)."""
    bot = get_bot_for_user(request.user, bot_id)
    made = documents.document_pairs_propose(bot=bot)
    if request.htmx:
        return render(request, f"{CHAT_PAGE}#pairs", document_pairs_context(bot))
    messages.success(
        request,
        ngettext(
            "%(n)s pair proposed from documents.", "%(n)s pairs proposed from documents.", made
        )
        % {"n": made},
    )
    return _pairs_page(bot)


@login_required
@require_POST
def document_pair_review(request, bot_id: int, pair_id: int):
    """Accept (with the edited question and answer) or reject one pair. 400 for an action other
    than the page's two buttons; an invalid edit (too long, a NUL character) changes nothing."""
    bot = get_bot_for_user(request.user, bot_id)
    pair = get_object_or_404(DocumentPair, pk=pair_id, bot=bot)
    form = DocumentPairForm(request.POST)
    if not form.is_valid() and form.has_error("action"):
        return HttpResponseBadRequest(_("Accept or reject the pair."))
    errors: list[str] = []
    if form.is_valid():
        try:
            pair = documents.document_pair_review(pair=pair, **form.service_kwargs())
        except ValidationError as exc:
            errors = exc.messages
    else:
        errors = _form_errors(form, labelled=True)
    if request.htmx:  # htmx swaps only 2xx responses: the error is shown in the row
        return render(
            request, f"{CHAT_PAGE}#pair", {"bot": bot, "pair": pair, "error": " ".join(errors)}
        )
    if errors:
        return _chat_page_refused(request, bot, errors)
    return _pairs_page(bot)


def _form_errors(form, *, labelled: bool = False) -> list[str]:
    return [
        f"{form[name].label}: {message}" if labelled and name in form.fields else message
        for name, field_errors in form.errors.items()
        for message in field_errors
    ]


# --- Calibration card (on the bot's Settings page) -----------------------------------------------

CALIBRATION = "training/calibration.html"


def _calibration_card(request, bot, *, form=None, status=200):
    """The card for htmx, else back to the Settings page (the card renders there too)."""
    if request.htmx:
        context = calibration_panel_context(bot)
        context["thresholds_form"] = form
        return render(request, f"{CALIBRATION}#panel", context, status=status)
    return redirect(reverse("bots:edit", args=[bot.pk]) + "#calibration")


@login_required
@require_GET
def calibration_preview(request, bot_id: int):
    """The slider's live preview: plain words and rates for an unsaved caution, read off the
    stored curve (no model call, no write)."""
    bot = get_bot_for_user(request.user, bot_id)
    form = CautionForm(request.GET)
    if not request.htmx:
        return redirect(reverse("bots:edit", args=[bot.pk]) + "#calibration")
    caution = form.cleaned_data["caution"] if form.is_valid() else None
    return render(
        request, f"{CALIBRATION}#preview", calibration_panel_context(bot, caution=caution)
    )


@login_required
@require_POST
def calibration_caution(request, bot_id: int):
    bot = get_bot_for_user(request.user, bot_id)
    form = CautionForm(request.POST)
    if not form.is_valid():
        return HttpResponse(_("The caution is a number from 0 to 1."), status=400)
    calibration.caution_apply(bot=bot, caution=form.cleaned_data["caution"])
    if not request.htmx:
        messages.success(request, _("Caution saved."))
    return _calibration_card(request, bot)


@login_required
@require_POST
def calibration_thresholds(request, bot_id: int):
    """Hand-set thresholds (the advanced section): automatic fitting goes off."""
    bot = get_bot_for_user(request.user, bot_id)
    form = ThresholdsForm(request.POST)
    if form.is_valid():
        try:
            calibration.thresholds_hand_set(
                bot=bot,
                direct=form.cleaned_data["direct_threshold"],
                answer=form.cleaned_data["answer_threshold"],
            )
        except ValidationError as exc:
            form.add_error(None, exc)
    if not form.is_valid():
        if request.htmx:  # htmx swaps only 2xx responses
            return _calibration_card(request, bot, form=form)
        messages.error(request, " ".join(m for ms in form.errors.values() for m in ms))
        return _calibration_card(request, bot)
    if not request.htmx:
        messages.success(request, _("Thresholds saved; they stay as you set them."))
    return _calibration_card(request, bot)


@login_required
@require_POST
def calibration_auto(request, bot_id: int):
    """Back to fitted thresholds (those of the stored fit for the bot's caution, at once)."""
    bot = get_bot_for_user(request.user, bot_id)
    calibration.thresholds_auto_set(bot=bot, auto=True)
    if not request.htmx:
        messages.success(request, _("Thresholds are fitted to your FAQ again."))
    return _calibration_card(request, bot)
