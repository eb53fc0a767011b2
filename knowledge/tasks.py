"""The knowledge app's entry point for the Celery worker (queue `ingest`, routed in settings).

Each task is defined beside the service that does its work, under its name here
(`knowledge.tasks.<name>`, which routes, beat and queued messages use): ingestion in
knowledge.services, embedding-model switches and text-search rebuilds in knowledge.reembedding,
per-bot vector indexes in knowledge.vector_indexes. Celery's autodiscovery imports this module,
which imports them; what is left here runs when a worker starts."""

import logging

from celery.signals import worker_ready
from django.db import connections

from . import reembedding, services
from .reembedding import rebuild_text_search, recover_stuck_reembeddings, reembed_bot
from .services import ingest_source, recover_stuck_sources
from .vector_indexes import sync_all_vector_indexes, sync_vector_indexes

__all__ = [
    "ingest_source",
    "rebuild_text_search",
    "recover_stuck_reembeddings",
    "recover_stuck_sources",
    "reembed_bot",
    "sync_all_vector_indexes",
    "sync_vector_indexes",
]

log = logging.getLogger(__name__)


@worker_ready.connect
def _take_over_after_start(sender=None, **kwargs) -> None:
    # A worker (re)started after a crash: the dead worker's messages are only redelivered after
    # the broker's visibility timeout (an hour), so unfinished runs are sent again now, and taken
    # over as soon as their heartbeat counts as dead (ClaimedJobs.claim's recheck).
    try:
        sent = services.sources_resend_unfinished() + reembedding.reembeddings_resend_unfinished()
    except Exception:  # the worker must start even if the database is not up yet: beat sweeps
        log.exception("Could not look for interrupted runs at start")
        return
    finally:
        connections.close_all()  # the pool's forked children must not share this connection
    if sent:
        log.info("Worker start: sent %d interrupted run(s) again.", sent)
    try:  # per-bot vector indexes missing after a migration or a lost sync: built in the queue
        sync_all_vector_indexes.delay()
    except Exception:
        log.warning("Could not queue the vector index sweep at start", exc_info=True)
