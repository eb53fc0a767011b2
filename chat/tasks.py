"""Chat tasks: the mode comparison (queue `training`, routed in settings). The work is in
chat.evaluation."""

from celery import shared_task

from . import evaluation


@shared_task(acks_late=True)
def run_evaluation(evaluation_id: int) -> str:
    return evaluation.evaluation_run(evaluation_id=evaluation_id)


@shared_task
def recover_stuck_evaluations() -> dict:
    return evaluation.evaluations_recover_stuck()
