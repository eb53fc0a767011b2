"""The chat app's entry point for the Celery worker: the mode comparison's tasks, defined in
chat.evaluation beside the services they run, under their names here (`chat.tasks.<name>`;
run_evaluation is routed to the `training` queue in settings). Celery's autodiscovery imports
this module, which imports them."""

from .evaluation import recover_stuck_evaluations, run_evaluation

__all__ = ["recover_stuck_evaluations", "run_evaluation"]
