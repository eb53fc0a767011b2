"""What the bot's thresholds mean for customers, in the owner's words (the Overview's Answering
card and the Settings page's calibration card). Built from the bot's stored calibration
(training.models.Calibration, fitted by training.calibration): its rates at the answer
threshold and its caution; the numbers themselves stay in an Advanced section. The bot's
Overview (bots) shows the card through `{% answering_panel bot %}` (training_panels)."""

from __future__ import annotations

from django.utils.translation import gettext as _

from .chat_tuning import deployed_chat_model
from .models import Calibration


def in_ten(rate: float | None) -> int:
    """A share as "n in 10" (0..10)."""
    return max(0, min(10, round((rate or 0.0) * 10)))


def rates_at(calibration: dict, threshold: float) -> dict[str, float]:
    """The stored curve's rates at the threshold nearest `threshold` ({} without a curve)."""
    curve = calibration.get("curve") or {}
    thresholds = curve.get("threshold") or []
    if not thresholds:
        return {}
    i = min(range(len(thresholds)), key=lambda k: abs((thresholds[k] or 0.0) - threshold))
    return {
        key: values[i]
        for key, values in curve.items()
        if key != "threshold" and i < len(values) and values[i] is not None
    }


def summary(at: dict[str, float], give_or_take: int | None = None) -> str:
    """One point of the curve in plain words, how much it answers and declines, and with
    `give_or_take` how sure the refusal estimate is (the owner's language; the English words are
    training.calibration_curve.summary's, which the fit stores)."""
    if not at:
        return ""
    values = {
        "answer": in_ten(at.get("answer")),
        "right": in_ten(at.get("right")),
        "unrelated": in_ten(at.get("refuse_unrelated", at.get("refuse_out"))),
    }
    if "refuse_on_topic" not in at:
        text = (
            _(
                "Answers about %(answer)s in 10 questions like your FAQ's (about %(right)s in 10 with "
                "the right entry), declines about %(unrelated)s in 10 unrelated ones."
            )
            % values
        )
    else:
        text = _(
            "Answers about %(answer)s in 10 questions like your FAQ's (about %(right)s in 10 with "
            "the right entry), declines about %(unrelated)s in 10 unrelated ones and about "
            "%(on_topic)s in 10 questions on your topic that no entry answers."
        ) % {**values, "on_topic": in_ten(at["refuse_on_topic"])}
    if give_or_take is not None and "refuse_out" in at:
        text += " " + _(
            "In all it declines about %(n)s in 10 questions it has no answer for, give or take "
            "%(spread)s."
        ) % {"n": in_ten(at["refuse_out"]), "spread": give_or_take}
    return text


def answering(bot) -> dict:
    """The Overview's Answering card: a headline, the figures behind it in words, where they come
    from, and the raw numbers for the Advanced section."""
    settings = Calibration.of(bot)
    calibration = settings.fit or {}
    if settings.thresholds_auto:
        at = calibration.get("at_threshold") or {}
    else:
        at = rates_at(calibration, bot.answer_threshold)
    if at:
        headline = _(
            "Answers word for word when it is very sure; declines about %(n)s in 10 unrelated "
            "questions."
        ) % {"n": in_ten(at.get("refuse_unrelated", at.get("refuse_out")))}
    else:
        headline = _("Answers word for word when it is very sure.")
    if deployed_chat_model(bot):
        less_sure = _(
            "When it is less sure, your fine-tuned model writes the answer, and each sentence is "
            "checked against your knowledge before a customer sees it."
        )
    elif bot.may_generate:
        less_sure = _(
            "When it is less sure, the chat model writes an answer from your knowledge, and each "
            "sentence is checked against it before a customer sees it."
        )
    else:
        less_sure = _(
            "When it is less sure, it gives your best-matching answer, introduced as a best "
            "match, or quotes your documents; below that, your fallback message."
        )
    if not settings.thresholds_auto:
        source = _("You set how sure it must be by hand, in Settings.")
    elif at:
        source = _(
            "Fitted to your FAQ: it declines about %(n)s in 10 of the questions it has no answer "
            "for, as you chose under “Cautious or helpful” in Settings."
        ) % {"n": in_ten(settings.caution)}
    else:
        source = _(
            "Not fitted to your FAQ yet: once it has FAQ entries, this card says how often it "
            "answers and declines."
        )
    return {
        "headline": headline,
        "less_sure": less_sure,
        "details": summary(
            at, calibration.get("give_or_take") if settings.thresholds_auto else None
        ),
        "source": source,
        "direct_threshold": bot.direct_threshold,
        "answer_threshold": bot.answer_threshold,
        "caution": settings.caution,
    }
