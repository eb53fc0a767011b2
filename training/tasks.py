"""Training tasks (queue `training`, routed in settings). The work is in services."""

from celery import shared_task

from askhandle.jobs import GiveUpTask
from providers import ProviderUnavailable

from . import calibration, retrieval

BUSY_RETRY_SECONDS = 30


@shared_task(bind=True, acks_late=True, max_retries=None)
def tune_retrieval(self, tuning_id: int) -> str:
    status = retrieval.tuning_run(tuning_id=tuning_id)
    if status == "busy":  # another tuning of the same bot is running: this one follows it
        raise self.retry(countdown=BUSY_RETRY_SECONDS)
    return status


@shared_task(acks_late=True)
def revert_retrieval(bot_id: int) -> bool:
    return retrieval.tuning_revert(bot_id=bot_id)


@shared_task
def recover_stuck_tunings() -> dict:
    return retrieval.tunings_recover_stuck()


@shared_task(
    acks_late=True,
    autoretry_for=(ProviderUnavailable,),
    retry_backoff=10,
    retry_backoff_max=600,
    max_retries=5,
)
def calibrate_bot(bot_id: int) -> bool:
    """Fit the bot's thresholds (training.calibration); a repeat stores the same fit."""
    return calibration.calibration_run(bot_id=bot_id) is not None


# --- Chat fine-tuning (training.chat_tuning) ------------------------------------------------------


@shared_task(acks_late=True)
def train_chat_tuning(run_id: int) -> str:
    """A local LoRA run; a second delivery finds the row claimed and does nothing."""
    from . import chat_tuning

    return chat_tuning.chat_tuning_run_local(run_id=run_id)


def _give_up_chat_tuning(run_id: int, *, error: str) -> None:
    from . import chat_tuning

    chat_tuning.chat_tuning_give_up(run_id, error=error)


@shared_task(
    base=GiveUpTask,
    acks_late=True,
    autoretry_for=(ProviderUnavailable,),
    retry_backoff=10,
    retry_backoff_max=600,
    max_retries=5,
    give_up=staticmethod(_give_up_chat_tuning),
)
def submit_chat_tuning(run_id: int) -> str:
    """Upload the set and create the job at the provider; beat polls it (poll_chat_tunings)."""
    from . import chat_tuning

    return chat_tuning.chat_tuning_submit(run_id=run_id)


@shared_task(acks_late=True, autoretry_for=(ProviderUnavailable,), retry_backoff=10, max_retries=5)
def cancel_provider_tuning(run_id: int) -> None:
    from . import chat_tuning

    chat_tuning.chat_tuning_cancel_at_provider(run_id=run_id)


@shared_task
def poll_chat_tunings() -> dict:
    from . import chat_tuning

    return chat_tuning.chat_tunings_poll()


@shared_task
def recover_stuck_chat_tunings() -> dict:
    from . import chat_tuning

    return chat_tuning.chat_tunings_recover_stuck()
