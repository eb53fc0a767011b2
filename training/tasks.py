"""Training tasks (queue `training`, routed in settings). The work is in services."""

from celery import shared_task

from . import retrieval

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
