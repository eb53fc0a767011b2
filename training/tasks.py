"""The training app's entry point for the Celery worker (queue `training`, routed in settings;
provider fine-tuning calls go to `default`).

Each task is defined beside the service that does its work, under its name here
(`training.tasks.<name>`, which routes, beat and queued messages use): retrieval tuning in
training.retrieval, calibration in training.calibration, chat fine-tuning in
training.chat_tuning (recovery), training.chat_tuning_local (local runs) and
training.chat_tuning_openai (provider runs). Celery's autodiscovery imports this module, which
imports them."""

from .calibration import calibrate_bot
from .chat_tuning import recover_stuck_chat_tunings
from .chat_tuning_local import train_chat_tuning
from .chat_tuning_openai import cancel_provider_tuning, poll_chat_tunings, submit_chat_tuning
from .retrieval import recover_stuck_tunings, revert_retrieval, tune_retrieval

__all__ = [
    "calibrate_bot",
    "cancel_provider_tuning",
    "poll_chat_tunings",
    "recover_stuck_chat_tunings",
    "recover_stuck_tunings",
    "revert_retrieval",
    "submit_chat_tuning",
    "train_chat_tuning",
    "tune_retrieval",
]
