"""Tasks are defined beside the services that do their work (knowledge.services,
training.retrieval, chat.evaluation ...) under the names `<app>.tasks.<name>` that
settings.CELERY_TASK_ROUTES, the beat schedule and messages already queued in Redis use."""

import importlib

from django.conf import settings

from askhandle.celery import app

# Queue of every task, as the routes sent them before the tasks moved beside their services.
QUEUES = {
    "bots.tasks.worker_heartbeat": "default",
    "chat.tasks.recover_stuck_evaluations": "default",
    "chat.tasks.run_evaluation": "training",
    "knowledge.tasks.ingest_source": "ingest",
    "knowledge.tasks.rebuild_text_search": "ingest",
    "knowledge.tasks.recover_stuck_reembeddings": "ingest",
    "knowledge.tasks.recover_stuck_sources": "ingest",
    "knowledge.tasks.reembed_bot": "ingest",
    "knowledge.tasks.sync_all_vector_indexes": "ingest",
    "knowledge.tasks.sync_vector_indexes": "ingest",
    "training.tasks.calibrate_bot": "training",
    "training.tasks.cancel_provider_tuning": "default",
    "training.tasks.poll_chat_tunings": "default",
    "training.tasks.recover_stuck_chat_tunings": "training",
    "training.tasks.recover_stuck_tunings": "training",
    "training.tasks.revert_retrieval": "training",
    "training.tasks.submit_chat_tuning": "default",
    "training.tasks.train_chat_tuning": "training",
    "training.tasks.tune_retrieval": "training",
}


def _ours() -> list[str]:
    app.loader.import_default_modules()
    return sorted(name for name in app.tasks if not name.startswith("celery."))


def test_every_task_keeps_its_name_and_queue():
    routed = {name: app.amqp.router.route({}, name)["queue"].name for name in _ours()}
    assert routed == QUEUES
    assert settings.CELERY_TASK_DEFAULT_QUEUE == "default"


def test_every_task_is_importable_from_its_apps_tasks_module_under_its_name():
    """The worker's autodiscovery imports `<app>.tasks`, which must import wherever each task
    is defined; tests and callers import tasks from there too."""
    for name in _ours():
        module, _, attr = name.rpartition(".")
        assert getattr(importlib.import_module(module), attr).name == name
