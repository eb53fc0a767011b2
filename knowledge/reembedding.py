"""Switching a bot's knowledge to another embedding model, as one tracked job.

When the owner picks another provider or embedding model, `embedding_change` records the model
the stored vectors come from as EmbeddingState.serving_embedding (searches and ingestions keep using it, see
knowledge.serving.embedding_model_for_bot) and queues a Reembedding. The job (queue `ingest`) embeds every
chunk of the bot with the new model, then, in one transaction holding the bot row, swaps all the
vectors in and clears serving_embedding. Until that commit the bot answers exactly as before; if
the new model cannot embed (no API key, a model the service does not have) the job fails with the
reason and the bot keeps answering with the old one. Searches filter on the model name, so
vectors of two models never meet in one search.

Retrieval tuning (training.retrieval) swaps vectors the same way, with `embed_chunks` and
`swap_vectors` from here. A worker killed mid-job is recovered by beat like an ingestion.

The job's tasks are defined here, beside the services they run (knowledge.tasks imports them for
the worker); they retry as the ingestion's do (knowledge.services.RETRY).
"""

from __future__ import annotations

import copy
import logging
from datetime import timedelta

from celery import shared_task
from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

import providers
from askhandle.jobs import ClaimedJobs, Superseded
from bots import languages
from bots.models import Bot

from . import serving, vector_indexes
from .models import Chunk, Reembedding, Source
from .resume import Staged, digest
from .services import RETRY, source_requeue
from .signals import faq_changed_on_commit, vectors_swapped
from .staging import as_vector, stage_and_run

log = logging.getLogger(__name__)

EMBED_BATCH = 64
MAX_ATTEMPTS = 3
ACTIVE = (Reembedding.Status.QUEUED, Reembedding.Status.RUNNING)
SHOW_FINISHED_FOR = timedelta(days=1)
JOBS = ClaimedJobs(
    Reembedding,
    waiting=Reembedding.Status.QUEUED,
    running=Reembedding.Status.RUNNING,
    failed=Reembedding.Status.FAILED,
)


class Skipped(Exception):
    """The bot's settings changed again while the job ran; the newer job takes over."""


# --- Shared with retrieval tuning ------------------------------------------------------------------


def embed_chunks(
    bot: Bot, provider, model_arg: str | None, on_progress=None, staged=None
) -> tuple[list[int], list]:
    """(chunk ids, vectors) of every chunk of the bot, embedded by `provider` with `model_arg`.

    `staged` (a knowledge.resume.Staged): vectors an interrupted run of the job already embedded
    are reused, and each new batch is staged, so a run taking over resumes where it stopped."""
    chunks = list(
        Chunk.objects.filter(bot=bot).order_by("pk").values("pk", "faq_id", "title", "text")
    )
    model = f"{provider.name}:{model_arg or provider.default_embedding_model()}"

    def embed_text(chunk: dict) -> str:
        return serving.chunk_embed_text(chunk, model)

    earlier = staged.vectors() if staged is not None else {}
    vectors: list = [earlier.get(digest(embed_text(c))) for c in chunks]
    reused = sum(vector is not None for vector in vectors)
    # Similar lengths batch together: the model pads each batch to its longest text.
    order = sorted(
        (i for i in range(len(chunks)) if vectors[i] is None),
        key=lambda i: len(embed_text(chunks[i])),
    )
    if on_progress:
        on_progress(reused, len(chunks))
    for start in range(0, len(order), EMBED_BATCH):
        batch = order[start : start + EMBED_BATCH]
        texts = [embed_text(chunks[i]) for i in batch]
        embedded = provider.embed(texts, model=model_arg, kind="passage")
        for i, vector in zip(batch, embedded, strict=True):
            vectors[i] = vector
        if staged is not None:
            staged.save(texts, embedded)
        if on_progress:
            on_progress(reused + start + len(batch), len(chunks))
    return [c["pk"] for c in chunks], vectors


SWAP_SQL = (
    "UPDATE knowledge_chunk c SET embedding = t.embedding, embedding_model = %s "
    "FROM swapped_vectors t WHERE c.id = t.id AND c.bot_id = %s"
)


def swap_vectors(bot: Bot, full_name: str, chunk_ids: list[int], vectors) -> None:
    """Inside the caller's transaction, holding the bot row: give the listed chunks their new
    vectors and model name. Chunks the job did not see (a source that finished ingesting
    meanwhile) carry another model's vectors: their sources are ingested again, after commit,
    with the bot's model as it is then."""
    stage_and_run(
        table="swapped_vectors",
        columns=[("id", "bigint", "int8"), ("embedding", "vector", "vector")],
        rows=(
            (chunk_id, as_vector(vector))
            for chunk_id, vector in zip(chunk_ids, vectors, strict=True)
        ),
        statements=[(SWAP_SQL, [full_name, bot.pk])],
    )
    stale_sources = set(
        Chunk.objects.filter(bot=bot)
        .exclude(embedding_model=full_name)
        .values_list("source_id", flat=True)
    )
    Source.objects.filter(bot=bot, chunk_count__gt=0).exclude(pk__in=stale_sources).update(
        embedding_model=full_name
    )
    for source_id in stale_sources:
        source_requeue(source_id=source_id)
    vector_indexes.sync_on_commit(bot.pk)  # the old model's index goes, the new one's is built


# --- Asking for a switch ---------------------------------------------------------------------------


def embedding_change(
    *, bot: Bot, provider_before: str, model_before: str, language_before: str | None = None
) -> Reembedding | None:
    """The owner saved another provider or embedding model (`*_before`: the settings as they
    were). Starts the switch of the bot's vectors; returns the queued job, or None when there is
    nothing to re-embed (no knowledge yet, or back to the model that is still serving)."""
    with transaction.atomic():
        current = Bot.objects.select_for_update().get(pk=bot.pk)
        if serving.serving_embedding(current):  # a switch is under way: old vectors serve
            serving_model = serving.serving_embedding(current)
        else:
            old = copy.copy(current)
            old.provider, old.embedding_model = provider_before, model_before
            old.language = language_before or current.language
            serving_model = serving.configured_embedding_model(old)
        # A tuned model was trained from the previous model; it goes once nothing serves it.
        serving.state(current).tuned_embedding_model = ""
        target = serving.configured_embedding_model(current)
        now = timezone.now()
        Reembedding.objects.filter(bot=current, status__in=ACTIVE).update(
            status=Reembedding.Status.SKIPPED,
            error="Replaced by a newer change of model.",
            finished_at=now,
            updated_at=now,
        )
        switching = target != serving_model and Chunk.objects.filter(bot=current).exists()
        serving.state_update(
            current,
            tuned_embedding_model="",
            serving_embedding=serving_model if switching else "",
        )
        job = None
        if switching:
            job = Reembedding.objects.create(bot=current, from_model=serving_model, to_model=target)
            _enqueue(job.pk)
        else:
            vectors_swapped.send(
                sender=Reembedding, bot_id=current.pk, reason="The bot's embedding model changed."
            )
    serving.state_update(
        bot, tuned_embedding_model="", serving_embedding=serving_model if switching else ""
    )
    return job


def embedding_settings_changed_receiver(
    sender,
    *,
    bot: Bot,
    provider_before: str,
    model_before: str,
    language_before: str | None = None,
    **kwargs,
) -> bool:
    """bots.signals.embedding_settings_changed: the owner saved another model or language.
    True when the bot's knowledge is being re-embedded (the old vectors serve meanwhile)."""
    job = embedding_change(
        bot=bot,
        provider_before=provider_before,
        model_before=model_before,
        language_before=language_before,
    )
    if language_before is not None and languages.text_search_config(
        language_before
    ) != languages.text_search_config(bot.language):
        text_search_rebuild_on_commit(bot.pk)
    return job is not None


# The full-text vectors of every chunk, in the bot's language (knowledge.serving).
TEXT_SEARCH_SQL = (
    f"UPDATE knowledge_chunk SET search_vector = {serving.SEARCH_VECTOR_SQL} WHERE bot_id = %(bot)s"
)


def text_search_rebuild(*, bot_id: int) -> int:
    """Recompute the bot's full-text vectors in its current language; returns the rows updated.
    Idempotent: a second run writes the same vectors."""
    bot = Bot.objects.filter(pk=bot_id).first()
    if bot is None:
        return 0
    with connection.cursor() as cur:
        cur.execute(TEXT_SEARCH_SQL, {"ts": serving.text_search_config(bot), "bot": bot_id})
        return cur.rowcount


@shared_task(name="knowledge.tasks.rebuild_text_search", acks_late=True)
def rebuild_text_search(bot_id: int) -> int:
    return text_search_rebuild(bot_id=bot_id)


def text_search_rebuild_on_commit(bot_id: int) -> None:
    transaction.on_commit(lambda: rebuild_text_search.delay(bot_id))


def reembedding_retry(*, bot: Bot) -> Reembedding | None:
    """Try a failed switch again (the owner fixed the API key, say)."""
    with transaction.atomic():
        current = Bot.objects.select_for_update().get(pk=bot.pk)
        last = Reembedding.objects.filter(bot=current).first()
        if (
            not serving.serving_embedding(current)
            or last is None
            or last.status != Reembedding.Status.FAILED
        ):
            return None
        job = Reembedding.objects.create(
            bot=current,
            from_model=serving.serving_embedding(current),
            to_model=serving.configured_embedding_model(current),
        )
        _enqueue(job.pk)
    return job


def _enqueue(job_id: int) -> None:
    JOBS.send_on_commit(reembed_bot, job_id)


def reembedding_to_show(bot: Bot) -> Reembedding | None:
    """The switch the knowledge page shows: one under way or failed (the old model still serves),
    or one that ended in the last day."""
    job = Reembedding.objects.filter(bot=bot).first()
    switching = bool(serving.serving_embedding(bot))
    if job is None or (job.status == Reembedding.Status.FAILED and not switching):
        return None  # a failure the owner has since undone (back to the model that serves)
    recent = job.finished_at and job.finished_at > timezone.now() - SHOW_FINISHED_FOR
    return job if job.is_active or switching or recent else None


# --- Running one -----------------------------------------------------------------------------------


def _stale() -> timedelta:
    return timedelta(seconds=settings.KNOWLEDGE_INGEST_STALE_SECONDS)


def reembedding_run(*, reembedding_id: int) -> str:
    """Run one queued switch; returns its final status ("" if it was not ours to run).

    ProviderUnavailable is re-raised after putting the job back to QUEUED (the task retries with
    a back-off); other provider errors fail the job, and the old vectors keep serving.
    """
    token = JOBS.claim(reembedding_id, recheck=reembed_bot)
    if token is None:
        return ""
    job = Reembedding.objects.select_related("bot").filter(pk=reembedding_id).first()
    if job is None:  # its bot was deleted meanwhile
        return ""
    try:
        with JOBS.heartbeat(reembedding_id, token):
            _run(job, token)
    except Superseded:
        log.info("Re-embedding %s superseded; its work was dropped.", reembedding_id)
    except Skipped as exc:
        JOBS.finish(reembedding_id, token, Reembedding.Status.SKIPPED, str(exc))
    except providers.ProviderUnavailable as exc:
        JOBS.owned(reembedding_id, token).update(
            status=Reembedding.Status.QUEUED,
            error=f"Waiting for the model service: {exc}"[:2000],
            updated_at=timezone.now(),
        )
        raise
    except providers.ProviderError as exc:
        JOBS.finish(reembedding_id, token, Reembedding.Status.FAILED, str(exc))
    except Exception as exc:
        log.exception("Re-embedding %s failed", reembedding_id)
        JOBS.finish(
            reembedding_id,
            token,
            Reembedding.Status.FAILED,
            f"Unexpected error while re-embedding ({exc.__class__.__name__}).",
        )
        raise
    status = (
        Reembedding.objects.filter(pk=reembedding_id).values_list("status", flat=True).first() or ""
    )
    if status in (Reembedding.Status.FAILED, Reembedding.Status.SKIPPED):
        Staged(bot_id=job.bot_id, model="", reembedding_id=reembedding_id).clear()
    return status


def reembedding_fail(*, reembedding_id: int, error: str) -> None:
    """The task gave up retrying: the job fails, the old vectors keep serving."""
    Reembedding.objects.filter(pk=reembedding_id, status__in=ACTIVE).update(
        status=Reembedding.Status.FAILED,
        error=error[:2000],
        finished_at=timezone.now(),
        updated_at=timezone.now(),
    )


def _reembedding_give_up(reembedding_id: int, *, error: str) -> None:
    reembedding_fail(
        reembedding_id=reembedding_id,
        error=f"{error}. The bot still answers with its previous model.",
    )


@shared_task(
    name="knowledge.tasks.reembed_bot", **RETRY, give_up=staticmethod(_reembedding_give_up)
)
def reembed_bot(self, reembedding_id: int) -> str:
    return reembedding_run(reembedding_id=reembedding_id)


def _run(job: Reembedding, token) -> None:
    provider_name, _, model_arg = job.to_model.partition(":")
    staged = Staged(bot_id=job.bot_id, model=job.to_model, reembedding_id=job.pk)
    chunk_ids, vectors = embed_chunks(
        job.bot,
        providers.get_provider(provider_name),
        model_arg,
        lambda done, total: JOBS.progress(job.pk, token, progress_done=done, progress_total=total),
        staged=staged,
    )
    with transaction.atomic():
        bot = Bot.objects.select_for_update().filter(pk=job.bot_id).first()
        if bot is None or not JOBS.owned(job.pk, token).select_for_update().exists():
            raise Superseded  # the bot was deleted, or another run took the job over
        if serving.configured_embedding_model(bot) != job.to_model:
            raise Skipped("The bot's settings changed again; a newer switch follows.")
        swap_vectors(bot, job.to_model, chunk_ids, vectors)
        staged.clear()
        serving.state_update(bot, serving_embedding="")
        vectors_swapped.send(
            sender=Reembedding, bot_id=bot.pk, reason="The bot's embedding model changed."
        )
        JOBS.finish(
            job.pk,
            token,
            Reembedding.Status.DONE,
            chunks=len(chunk_ids),
            progress_done=len(chunk_ids),
            progress_total=len(chunk_ids),
        )
        # The new model may be the local one again: tuning (if on) picks the bot up.
        faq_changed_on_commit(bot.pk, "embedding model changed")
    log.info("Bot %s now searches %s (%d chunks)", job.bot_id, job.to_model, len(chunk_ids))


# --- Recovery --------------------------------------------------------------------------------------


def reembeddings_resend_unfinished() -> int:
    """A worker starts: send queued and running switches again (see
    knowledge.services.sources_resend_unfinished)."""
    ids = JOBS.unfinished_ids()
    for job_id in ids:
        _enqueue(job_id)
    return len(ids)


def reembeddings_recover_stuck(*, stale_seconds: int | None = None) -> dict:
    """Beat: re-queue switches whose worker stopped, or fail them after MAX_ATTEMPTS; re-send
    queued ones whose message was lost. A switch never stays "re-embedding" for ever."""
    return JOBS.recover_stuck(
        stale=_stale() if stale_seconds is None else timedelta(seconds=stale_seconds),
        max_attempts=MAX_ATTEMPTS,
        failure=f"Re-embedding was interrupted {MAX_ATTEMPTS} times (the worker stopped); the "
        "bot still answers with its previous model. Try again.",
        enqueue=_enqueue,
    )


@shared_task(name="knowledge.tasks.recover_stuck_reembeddings")
def recover_stuck_reembeddings() -> dict:
    return reembeddings_recover_stuck()
