"""Reads for the training pages."""

from datetime import datetime

from django.db.models import Case, IntegerField, Value, When
from django.utils import formats, timezone
from django.utils.formats import number_format
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from bots.models import Bot
from knowledge import serving

from .answering import summary
from .calibration_curve import caution_preview, give_or_take
from .models import Calibration, ChatTuning, DocumentPair, RetrievalTuning
from .retrieval import tuning_unavailable_reason


def tuning_panel_context(bot: Bot) -> dict:
    """What the retrieval-tuning card shows: the latest job, the deployed one, and why not."""
    latest = RetrievalTuning.objects.filter(bot=bot).first()
    deployed = (
        latest
        if latest and latest.status == RetrievalTuning.Status.DEPLOYED
        else RetrievalTuning.objects.filter(bot=bot, status=RetrievalTuning.Status.DEPLOYED).first()
    )
    return {
        "bot": bot,
        "tuning": latest,
        "deployed": deployed,
        "unavailable": tuning_unavailable_reason(bot),
        # Turned off, and a worker is putting the base model's vectors back (tuning_revert).
        "reverting": not bot.retrieval_tuning and bool(serving.tuned_model(bot)),
        "embedding": serving.state(bot),
    }


def chat_tuning_context(bot: Bot) -> dict:
    """What the Fine-tuning page shows besides a built set: the latest run, every version and
    those deployed."""
    runs = list(ChatTuning.objects.filter(bot=bot).order_by("-created_at", "-pk")[:30])
    # One per tuned mode at most: each answers in the mode it was trained for.
    deployed = [r for r in runs if r.status == ChatTuning.Status.DEPLOYED]
    return {
        "bot": bot,
        "runs": runs,
        "run": runs[0] if runs else None,
        "deployed": deployed,
        "modes": ChatTuning.Mode.choices,
        "backends": ChatTuning.Backend.choices,
        **document_pairs_context(bot),
    }


def document_pairs_context(bot: Bot) -> dict:
    """The document pairs card: pairs to review first, then accepted, then rejected."""
    order = Case(
        When(status=DocumentPair.Status.PROPOSED, then=Value(0)),
        When(status=DocumentPair.Status.ACCEPTED, then=Value(1)),
        default=Value(2),
        output_field=IntegerField(),
    )
    pairs = list(
        DocumentPair.objects.filter(bot=bot).annotate(order=order).order_by("order", "pk")[:300]
    )
    counts = {status: 0 for status in DocumentPair.Status.values}
    for pair in pairs:
        counts[pair.status] += 1
    return {"bot": bot, "pairs": pairs, "pair_counts": counts}


def loss_chart(run) -> dict:
    return {"steps": [s for s, _ in run.losses], "losses": [loss for _, loss in run.losses]}


def _fitted_on(calibration: dict) -> str:
    try:
        when = datetime.fromisoformat(calibration.get("fitted_at", ""))
    except ValueError:
        return ""
    return formats.date_format(timezone.localtime(when), "DATE_FORMAT")


# How training.calibration chose its in-scope samples (stored in English with the fit).
METHODS = {
    "held-out phrasings (kept out of retrieval tuning)": gettext_lazy(
        "held-out phrasings (kept out of retrieval tuning)"
    ),
    "each phrasing held out in turn": gettext_lazy("each phrasing held out in turn"),
    "other phrasings, asked as questions": gettext_lazy("other phrasings, asked as questions"),
}


def _give_or_take(calibration: dict) -> int | None:
    spread = calibration.get("refusal_spread")
    return None if spread is None else give_or_take(spread)


def calibration_panel_context(bot: Bot, caution: float | None = None) -> dict:
    """What the Settings page's "cautious <-> helpful" card shows: the stored fit's headline for
    the bot's caution (or `caution`, the slider's unsaved position: read off the stored curve,
    no model call), its numbers for the advanced section, and when it was fitted."""
    settings = Calibration.of(bot)
    calibration = settings.fit or {}
    value = settings.caution if caution is None else min(1.0, max(0.0, float(caution)))
    point = caution_preview(calibration, value)
    return {
        "bot": bot,
        "settings": settings,
        "fitted": bool(point),
        "caution": value,
        "point": point,
        "summary": summary(point.get("at_threshold", {}), _give_or_take(calibration)),
        "rates": point.get("at_threshold", {}),
        "samples": calibration.get("samples", {}),
        "method": METHODS.get(calibration.get("method", ""), calibration.get("method", "")),
        "fitted_on": _fitted_on(calibration),
    }


def _two(value: float) -> str:
    return number_format(value, 2)


def calibration_note(bot: Bot) -> str:
    """One line on where the bot's thresholds come from (the Test page)."""
    if not Calibration.of(bot).thresholds_auto:
        return _(
            "Thresholds set by hand: answers from similarity %(answer)s, word for word from "
            "%(direct)s."
        ) % {"answer": _two(bot.answer_threshold), "direct": _two(bot.direct_threshold)}
    context = calibration_panel_context(bot)
    point, on = context["point"], context["fitted_on"]
    if not point:
        return _("Not fitted yet: add FAQ entries with other phrasings of their questions.")
    values = {"date": on, "summary": context["summary"], "caution": _two(point["caution"])}
    if on:
        return (
            _("Thresholds fitted to your FAQ on %(date)s: %(summary)s (caution %(caution)s)")
            % values
        )
    return _("Thresholds fitted to your FAQ: %(summary)s (caution %(caution)s)") % values
