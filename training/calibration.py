"""Answer thresholds fitted to each bot and stored on it, and the owner's controls over them.

One pair of thresholds does not fit every bot: the scores' scale depends on the FAQ (how close its
entries sit) and on the embedding model (base or tuned). So after every FAQ or model change a
task (calibrate_bot) fits the bot's own from samples of its questions
(training.calibration_samples) and stores the fit (training.calibration_curve) in its Calibration
row. The owner's caution reads new thresholds off the stored curve at once; thresholds set by
hand switch fitting off. Measurements: benchmarks/RESULTS.md; the choices: docs/decisions.md.
"""

from __future__ import annotations

from celery import shared_task
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from bots.models import Bot
from knowledge import serving
from providers import ProviderUnavailable

from .calibration_curve import point_for_caution, thresholds_for_caution
from .calibration_samples import calibration_fit
from .models import Calibration

# --- Fitting and storing -----------------------------------------------------------------------


def calibration_request(bot_id: int) -> None:
    """Queue a calibration of the bot after the current transaction commits (or now, outside
    one). Called after its FAQ or serving model changed and after a tuning deploy or revert."""
    calibrate_bot.delay_on_commit(bot_id)


def calibration_run(*, bot_id: int) -> dict | None:
    """Fit the bot's calibration and store it in its Calibration row; with automatic thresholds,
    also set its answer and direct thresholds from its caution. Idempotent (the same FAQ and model
    give the same fit). Returns the stored fit, or None when the bot is gone, has no FAQ (its
    calibration is cleared; automatic thresholds go back to the defaults), or switched models
    while this ran (the switch queues its own calibration). Model I/O runs outside the
    transaction that stores the result."""
    bot = Bot.objects.filter(pk=bot_id).first()
    if bot is None:
        return None
    result = calibration_fit(bot)
    if result is not None:
        result["fitted_at"] = timezone.now().isoformat()
    with transaction.atomic():
        bot = Bot.objects.select_for_update().filter(pk=bot_id).first()
        if bot is None:
            return None
        if result is not None and serving.embedding_model_for_bot(bot) != result["model"]:
            return None
        settings = Calibration.of(bot)
        if settings.thresholds_auto:
            if result is None:
                answer = Bot._meta.get_field("answer_threshold").default
                direct = Bot._meta.get_field("direct_threshold").default
            else:
                answer, direct = thresholds_for_caution(result, settings.caution)
                result = {**result, **point_for_caution(result, settings.caution)}
            Bot.objects.filter(pk=bot_id).update(answer_threshold=answer, direct_threshold=direct)
        Calibration.objects.filter(pk=settings.pk).update(fit=result or {})
    return result


@shared_task(
    name="training.tasks.calibrate_bot",
    acks_late=True,
    autoretry_for=(ProviderUnavailable,),
    retry_backoff=10,
    retry_backoff_max=600,
    max_retries=5,
)
def calibrate_bot(bot_id: int) -> bool:
    """Fit the bot's thresholds (calibration_run); a repeat stores the same fit. Defined here,
    beside its service; training.tasks imports it for the worker."""
    return calibration_run(bot_id=bot_id) is not None


# --- The owner's controls -----------------------------------------------------------------------


def caution_apply(*, bot, caution: float):
    """Save the owner's caution. With automatic thresholds the bot answers by the thresholds it
    gives on the stored curve at once (no model call); with hand-set ones only the caution is
    kept for when they are switched back to automatic. Returns the bot."""
    caution = min(1.0, max(0.0, float(caution)))
    with transaction.atomic():
        settings = _locked(bot)
        settings.caution = caution
        if settings.thresholds_auto and settings.fit.get("curve"):
            point = point_for_caution(settings.fit, caution)
            settings.fit = {**settings.fit, **point}
            _set_thresholds(bot, point["direct_threshold"], point["answer_threshold"])
        settings.save(update_fields=["caution", "fit"])
    return bot


def _locked(bot) -> Calibration:
    """The bot's Calibration as stored, under the lock calibration_run takes (the bot row first),
    so an owner's change and a fit finishing at the same time do not mix their thresholds."""
    Bot.objects.select_for_update().filter(pk=bot.pk).first()
    settings, _created = Calibration.objects.select_for_update().get_or_create(bot=bot)
    bot.calibration = settings
    return settings


def _set_thresholds(bot, direct: float, answer: float) -> None:
    Bot.objects.filter(pk=bot.pk).update(direct_threshold=direct, answer_threshold=answer)
    bot.direct_threshold, bot.answer_threshold = direct, answer


def thresholds_auto_set(*, bot, auto: bool):
    """Switch between fitted thresholds and hand-set ones (the advanced section). Back to
    automatic, the stored fit's thresholds for the bot's caution apply at once."""
    with transaction.atomic():
        settings = _locked(bot)
        settings.thresholds_auto = auto
        settings.save(update_fields=["thresholds_auto"])
        if auto:
            return caution_apply(bot=bot, caution=settings.caution)
    return bot


def thresholds_hand_set(*, bot, direct: float, answer: float):
    """The owner's own thresholds (the advanced section): stored as given and automatic fitting
    switched off, so the next calibration keeps them. Raises ValidationError when the answer
    threshold is above the direct one or either is outside 0..1. Returns the bot."""
    direct, answer = float(direct), float(answer)
    if not (0.0 <= answer <= 1.0 and 0.0 <= direct <= 1.0):
        raise ValidationError("Thresholds are similarities between 0 and 1.")
    if answer > direct:
        raise ValidationError(
            {"answer_threshold": "Must not be above the direct-answer threshold."}
        )
    with transaction.atomic():
        _set_thresholds(bot, direct, answer)
        thresholds_by_hand(bot)
    return bot


def thresholds_by_hand(bot) -> None:
    """The bot's thresholds were set by hand (here, or on the bots settings form through
    bots.signals.thresholds_set_by_hand): the next calibration keeps them."""
    with transaction.atomic():
        settings = _locked(bot)
        settings.thresholds_auto = False
        settings.save(update_fields=["thresholds_auto"])
