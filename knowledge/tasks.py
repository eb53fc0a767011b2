"""Ingestion tasks (queue `ingest`, routed in settings). Bodies stay thin: the work is in services.

A model service that is down (ProviderUnavailable) is retried with Celery's exponential back-off
(10 s, 20 s, 40 s ... with jitter, at most 10 minutes apart); after the last retry the job fails
with a readable reason (askhandle.jobs.GiveUpTask)."""

import logging

from celery import shared_task
from celery.signals import worker_ready
from django.conf import settings
from django.db import InterfaceError, OperationalError, connections

from askhandle.jobs import GiveUpTask
from providers import ProviderUnavailable

from . import reembedding, services, vector_indexes

log = logging.getLogger(__name__)

RETRY = {
    "base": GiveUpTask,
    "bind": True,
    "acks_late": True,
    # The database went away mid-run (restart, failover): retried with the same back-off; the
    # run's claim is taken over once its heartbeat counts as dead, resuming from staged batches.
    "autoretry_for": (ProviderUnavailable, OperationalError, InterfaceError),
    "retry_backoff": 10,
    "retry_backoff_max": 600,
    "max_retries": 5,
}


def _source_give_up(source_id: int, *, error: str) -> None:
    services.source_fail(source_id=source_id, error=error)


def _reembedding_give_up(reembedding_id: int, *, error: str) -> None:
    reembedding.reembedding_fail(
        reembedding_id=reembedding_id,
        error=f"{error}. The bot still answers with its previous model.",
    )


@shared_task(**RETRY, give_up=staticmethod(_source_give_up))
def ingest_source(self, source_id: int) -> None:
    services.source_ingest(
        source_id=source_id, slice_seconds=settings.KNOWLEDGE_INGEST_SLICE_SECONDS
    )


@shared_task(acks_late=True)
def rebuild_text_search(bot_id: int) -> int:
    return reembedding.text_search_rebuild(bot_id=bot_id)


@shared_task
def recover_stuck_sources() -> dict:
    return services.sources_recover_stuck()


@shared_task(**RETRY, give_up=staticmethod(_reembedding_give_up))
def reembed_bot(self, reembedding_id: int) -> str:
    return reembedding.reembedding_run(reembedding_id=reembedding_id)


@shared_task
def recover_stuck_reembeddings() -> dict:
    return reembedding.reembeddings_recover_stuck()


@shared_task(acks_late=True)
def sync_vector_indexes(bot_id: int) -> dict:
    return vector_indexes.sync(bot_id)


@shared_task
def sync_all_vector_indexes() -> dict:
    return vector_indexes.sync_all()


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
