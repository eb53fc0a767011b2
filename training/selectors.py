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


def chat_tuning_context(bot: Bot) -> dict:
    """What the Fine-tuning page shows besides a built set: the latest run, every version and
    the one deployed."""
    from .models import ChatTuning

    runs = list(ChatTuning.objects.filter(bot=bot).order_by("-created_at", "-pk")[:30])
    deployed = next((r for r in runs if r.status == ChatTuning.Status.DEPLOYED), None)
    return {
        "bot": bot,
        "runs": runs,
        "run": runs[0] if runs else None,
        "deployed": deployed,
        "modes": ChatTuning.Mode.choices,
        "backends": ChatTuning.Backend.choices,
    }


def loss_chart(run) -> dict:
    return {"steps": [s for s, _ in run.losses], "losses": [loss for _, loss in run.losses]}
