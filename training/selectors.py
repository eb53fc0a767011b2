"""Reads for the training pages."""

from bots.models import Bot

from .models import RetrievalTuning
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
        "reverting": not bot.retrieval_tuning and bool(bot.tuned_embedding_model),
    }
