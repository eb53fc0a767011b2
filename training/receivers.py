"""How training reacts to bots and knowledge (which never import training): their signals."""

from django.db.models.signals import post_delete
from django.dispatch import receiver

from bots.models import Bot
from bots.signals import thresholds_set_by_hand
from knowledge.signals import faq_changed, vectors_swapped

from . import calibration, retrieval
from .models import RetrievalTuning


@receiver(thresholds_set_by_hand, dispatch_uid="training.thresholds_by_hand")
def keep_hand_set_thresholds(sender, *, bot: Bot, **kwargs) -> None:
    calibration.thresholds_by_hand(bot)


@receiver(faq_changed, dispatch_uid="training.tune_after_faq_change")
def tune_after_faq_change(sender, *, bot_id: int, reason: str, **kwargs) -> None:
    """The bot's FAQ (or its serving model) changed: re-tune its retrieval model, if on."""
    retrieval.tuning_request_after_ingest(bot_id=bot_id, reason=reason)


@receiver(faq_changed, dispatch_uid="training.calibrate_after_faq_change")
def calibrate_after_faq_change(sender, *, bot_id: int, **kwargs) -> None:
    """Fit the bot's thresholds to its new FAQ (or model) now; a tuning deploy refits them."""
    calibration.calibration_request(bot_id)


@receiver(vectors_swapped, dispatch_uid="training.retire_after_swap")
def retire_after_swap(sender, *, bot_id: int, reason: str, **kwargs) -> None:
    """Every chunk moved to another model: the tuned model trained from the old one retires."""
    retrieval.tuned_models_retire(bot_id, reason)


@receiver(post_delete, sender=RetrievalTuning, dispatch_uid="training.retrieval_tuning_weights")
def delete_weights_with_tuning(sender, instance: RetrievalTuning, **kwargs) -> None:
    """A tuning deleted (with its bot or workspace, by cascade) takes its stored weights with it,
    after commit: bots and accounts (earlier apps) cannot know about training's files."""
    retrieval.delete_weights_on_commit(instance.weights)
