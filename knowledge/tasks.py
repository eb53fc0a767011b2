"""Ingestion tasks (queue `ingest`, routed in settings). Bodies stay thin: the work is in services."""

from celery import shared_task

from providers import ProviderUnavailable

from . import reembedding, services

RETRY_BACKOFF_MAX = 600


@shared_task(bind=True, acks_late=True, max_retries=5)
def ingest_source(self, source_id: int) -> None:
    try:
        services.source_ingest(source_id=source_id)
    except ProviderUnavailable as exc:
        if self.request.retries >= self.max_retries:
            services.source_fail(
                source_id=source_id, error=f"The model service stayed unavailable: {exc}"
            )
            return
        raise self.retry(
            exc=exc, countdown=min(RETRY_BACKOFF_MAX, 10 * 2**self.request.retries)
        ) from exc


@shared_task
def recover_stuck_sources() -> dict:
    return services.sources_recover_stuck()


@shared_task(bind=True, acks_late=True, max_retries=5)
def reembed_bot(self, reembedding_id: int) -> str:
    try:
        return reembedding.reembedding_run(reembedding_id=reembedding_id)
    except ProviderUnavailable as exc:
        if self.request.retries >= self.max_retries:
            reembedding.reembedding_fail(
                reembedding_id=reembedding_id,
                error=f"The model service stayed unavailable: {exc}. The bot still answers "
                "with its previous model.",
            )
            return "failed"
        raise self.retry(
            exc=exc, countdown=min(RETRY_BACKOFF_MAX, 10 * 2**self.request.retries)
        ) from exc


@shared_task
def recover_stuck_reembeddings() -> dict:
    return reembedding.reembeddings_recover_stuck()
