"""Retrieval tuning: fine-tune the local embedding model on one bot's FAQ, then deploy it to that
bot.

An FAQ entry's phrasings (its question and the other ways customers ask it) are a labelled
training set that every FAQ bot already has. Contrastive fine-tuning on them (SetFit-style,
training.local_training.train_embedding_model) pulls each entry's phrasings together and pushes
other entries' apart, which is what tells "freeze my card" from "unfreeze my card" (what it
gained on CLINC150: benchmarks/RESULTS.md). The weights are the average of
settings.RETRIEVAL_TUNING_RUNS seeded runs (see train_embedding_model).

The job (queue `training`, one running per bot; a second waits for the first):
  1. claim a QUEUED tuning; queued requests older than the claim are folded into it;
  2. train on the bot's current FAQ phrasings, saving the weights to default storage;
  3. re-embed every chunk of the bot with the tuned model (the bot keeps answering with the old
     vectors meanwhile);
  4. deploy in one transaction, holding the bot row: swap every chunk's vector and model name,
     set EmbeddingState.tuned_embedding_model. Chunks saved by an ingestion that finished in
     between are re-queued; an ingestion that saves later sees the new model and re-embeds
     (knowledge.services).
Turning tuning off runs the same swap back to the base model (tuning_revert), so the bot never
searches a model that has no vectors.

Searches filter on the model name, so base and tuned vectors never mix. A worker killed mid-job
is recovered by the beat task like an ingestion: re-queued, or failed after MAX_ATTEMPTS.

The tasks are defined here, beside the services they run; training.tasks imports them for the
worker.
"""

from __future__ import annotations

import logging
import secrets
import time
from datetime import timedelta

from celery import shared_task
from django.conf import settings
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.db import transaction
from django.utils import timezone
from django.utils.formats import number_format
from django.utils.translation import gettext as _
from django.utils.translation import gettext_noop

import providers
from askhandle.jobs import DEAD_AFTER, ClaimedJobs, Superseded
from bots.models import Bot
from knowledge import serving
from knowledge.models import Chunk, EmbeddingState, FaqEntry
from knowledge.reembedding import embed_chunks, swap_vectors

from .calibration import calibration_request
from .calibration_samples import holdout_split
from .local_training import train_embedding_model
from .models import RetrievalTuning

log = logging.getLogger(__name__)

# A tuning whose worker died this many times fails instead of being re-queued again: a crash
# that repeats (out of memory on this FAQ) would otherwise loop for ever.
MAX_ATTEMPTS = 3
REVERTING = "reverting"  # stage of a deployed tuning while tuning_revert re-embeds with the base
BATCH_SIZE = 64  # anchors of up to 64 distinct entries a step: each is contrasted with many others
# A usual rate for fine-tuning a small sentence encoder, and the one measured on CLINC150
# (benchmarks/RESULTS.md).
LEARNING_RATE = 5e-5
MIN_STEPS = 20  # a small FAQ still gets enough updates to move
# Another tuning of the bot is running (for minutes): asking again every 30 s costs nothing.
BUSY_RETRY_SECONDS = 30
TUNINGS = ClaimedJobs(
    RetrievalTuning,
    waiting=RetrievalTuning.Status.QUEUED,
    running=RetrievalTuning.Status.RUNNING,
    failed=RetrievalTuning.Status.FAILED,
    reason_field="message",
)


class Skipped(Exception):
    """The bot no longer wants or allows this tuning (the owner changed its model, turned tuning
    off, or grew past the size limit); the tuning ends as SKIPPED with the reason."""


def _lock_bot(bot_id: int) -> None:
    """Serialise tuning requests, deploys and ingestion saves of one bot (inside a transaction)."""
    list(Bot.objects.select_for_update().filter(pk=bot_id).values_list("pk", flat=True))


# --- Asking for a tuning ---------------------------------------------------------------------------


def tuning_unavailable_reason(bot: Bot) -> str:
    """Why this bot cannot be tuned now ("" if it can)."""
    if serving.serving_embedding(bot):
        return _("The bot is switching embedding models; tuning can start once that is done.")
    if bot.provider != Bot.Provider.LOCAL:
        return _("Retrieval tuning works with the local embedding model only.")
    if (
        serving.chosen_embedding_model(bot)
        != providers.get_provider("local").default_embedding_model()
    ):
        return _(
            "Retrieval tuning works with the local English model only; the multilingual model "
            "that understands your bot's language cannot be fine-tuned here."
        )
    if Chunk.objects.filter(bot=bot).count() > settings.RETRIEVAL_TUNING_MAX_CHUNKS:
        return _(
            "This bot has more than %(n)s chunks; it keeps the base model, which the shared "
            "vector index serves faster."
        ) % {"n": number_format(settings.RETRIEVAL_TUNING_MAX_CHUNKS, force_grouping=True)}
    with_phrasings = sum(
        1
        for alternates in FaqEntry.objects.filter(bot=bot).values_list(
            "alternate_questions", flat=True
        )
        if alternates
    )
    if with_phrasings < 2:
        return _(
            "Add other phrasings of the question to at least two FAQ entries to tune retrieval."
        )
    return ""


def tuning_request(*, bot: Bot, reason: str = "", force: bool = False) -> RetrievalTuning | None:
    """Queue a tuning of `bot` unless one is already queued (it will read the latest FAQ).

    Without `force`, nothing is queued when the bot has tuning turned off or cannot be tuned.
    """
    if not force and not bot.retrieval_tuning:
        return None
    if tuning_unavailable_reason(bot):
        return None
    with transaction.atomic():
        _lock_bot(bot.pk)
        queued = RetrievalTuning.objects.filter(
            bot=bot, status=RetrievalTuning.Status.QUEUED
        ).first()
        if queued:
            return queued
        tuning = RetrievalTuning.objects.create(bot=bot, reason=reason[:200])
        _enqueue(tuning.pk)
    return tuning


def tuning_request_after_ingest(*, bot_id: int, reason: str) -> None:
    """Called by knowledge.services when a source with FAQ entries changed."""
    if not settings.RETRIEVAL_TUNING_AUTO:
        return
    bot = Bot.objects.filter(pk=bot_id).first()
    if bot:
        tuning_request(bot=bot, reason=reason)


def tuning_disable(*, bot: Bot) -> None:
    """Turn tuning off. The tuned model keeps answering until a worker has re-embedded the bot's
    chunks with the base model and swapped them in (tuning_revert); queued tunings are dropped."""
    with transaction.atomic():
        _lock_bot(bot.pk)
        Bot.objects.filter(pk=bot.pk).update(retrieval_tuning=False, updated_at=timezone.now())
        RetrievalTuning.objects.filter(bot=bot, status=RetrievalTuning.Status.QUEUED).update(
            status=RetrievalTuning.Status.SKIPPED,
            message="Tuning was turned off.",
            finished_at=timezone.now(),
        )
        if EmbeddingState.objects.filter(bot=bot).exclude(tuned_embedding_model="").exists():
            _enqueue_revert(bot.pk)
    bot.retrieval_tuning = False


def _enqueue_revert(bot_id: int) -> None:
    revert_retrieval.delay_on_commit(bot_id)


def tuning_revert(*, bot_id: int) -> bool:
    """Back to the base model for a bot whose tuning was turned off: re-embed every chunk with
    it, then swap in one transaction. Idempotent; does nothing if tuning was turned back on."""
    bot = Bot.objects.filter(pk=bot_id).first()
    if bot is None or bot.retrieval_tuning or not serving.tuned_model(bot):
        return False
    # Progress goes on the deployed tuning's row, which the tuning card shows while reverting.
    deployed = list(
        RetrievalTuning.objects.filter(
            bot_id=bot_id, status=RetrievalTuning.Status.DEPLOYED
        ).values_list("pk", flat=True)[:1]
    )

    def on_progress(done: int, total: int) -> None:
        RetrievalTuning.objects.filter(pk__in=deployed).update(
            stage=REVERTING, progress_done=done, progress_total=total, updated_at=timezone.now()
        )

    chunk_ids, vectors = embed_chunks(
        bot, providers.get_provider("local"), serving.chosen_embedding_model(bot), on_progress
    )
    with transaction.atomic():
        bot = Bot.objects.select_for_update().get(pk=bot_id)
        if bot.retrieval_tuning or not serving.tuned_model(bot):
            return False
        serving.state(bot).tuned_embedding_model = ""
        swap_vectors(bot, serving.embedding_model_for_bot(bot), chunk_ids, vectors)
        tuned_models_retire(bot.pk, "Tuning was turned off; the base model answers again.")
        calibration_request(bot.pk)
        serving.state_update(bot, tuned_embedding_model="")
    log.info("Bot %s is back on the base embedding model (%d chunks)", bot_id, len(chunk_ids))
    return True


@shared_task(name="training.tasks.revert_retrieval", acks_late=True)
def revert_retrieval(bot_id: int) -> bool:
    return tuning_revert(bot_id=bot_id)


def tuned_models_retire(bot_id: int, message: str) -> None:
    """The bot no longer searches its tuned model (replaced, turned off, or knowledge.reembedding
    switched the bot to another embedding model): mark the deployed tuning replaced and delete
    its weights after commit."""
    for tuning in RetrievalTuning.objects.filter(
        bot_id=bot_id, status=RetrievalTuning.Status.DEPLOYED
    ):
        tuning.status, tuning.message = RetrievalTuning.Status.REPLACED, message
        tuning.save(update_fields=["status", "message", "updated_at"])
        delete_weights_on_commit(tuning.weights)


def delete_weights_on_commit(name: str) -> None:
    if name:
        transaction.on_commit(lambda: default_storage.delete(name))


def _enqueue(tuning_id: int) -> None:
    TUNINGS.send_on_commit(tune_retrieval, tuning_id)


# --- Running one -----------------------------------------------------------------------------------


def _claim(tuning_id: int):
    """The run's token, None when the tuning is not ours to run, or "busy" while another tuning
    of the same bot runs (one at a time per bot: each deploys over the other)."""
    stale = DEAD_AFTER  # a running tuning's heartbeat (TUNINGS.heartbeat) beats every 10 s
    tuning = RetrievalTuning.objects.filter(pk=tuning_id).first()
    if tuning is None:
        return None
    with transaction.atomic():
        _lock_bot(tuning.bot_id)
        busy = RetrievalTuning.objects.filter(
            bot_id=tuning.bot_id,
            status=RetrievalTuning.Status.RUNNING,
            updated_at__gte=timezone.now() - stale,
        ).exclude(pk=tuning_id)
        if busy.exists():
            return "busy"
        return TUNINGS.claim(
            tuning_id, stale=stale, recheck=tune_retrieval, stage=gettext_noop("reading the FAQ")
        )


def _finish(tuning_id: int, token, status: str, message: str = "", **fields) -> None:
    TUNINGS.finish(tuning_id, token, status, message, stage="", **fields)


def tuning_run(*, tuning_id: int) -> str:
    """Run one queued tuning. Returns "busy" when another tuning of the bot is running (the task
    retries later), else the tuning's final status ("" if it was not ours to run)."""
    token = _claim(tuning_id)
    if token == "busy":
        return "busy"
    if token is None:
        return ""
    tuning = RetrievalTuning.objects.select_related("bot").get(pk=tuning_id)
    bot = tuning.bot
    # Queued requests for the same bot are covered by this run: it reads the latest FAQ.
    RetrievalTuning.objects.filter(
        bot=bot, status=RetrievalTuning.Status.QUEUED, created_at__lte=tuning.started_at
    ).update(
        status=RetrievalTuning.Status.SKIPPED,
        message=f"Covered by tuning {tuning.pk}.",
        finished_at=timezone.now(),
    )
    try:
        reason = tuning_unavailable_reason(bot)
        if reason:
            _finish(tuning_id, token, RetrievalTuning.Status.SKIPPED, reason)
        else:
            with TUNINGS.heartbeat(tuning_id, token):
                _run(tuning, token)
    except Superseded:
        log.info("Retrieval tuning %s superseded; its work was dropped.", tuning_id)
    except Skipped as exc:
        _finish(tuning_id, token, RetrievalTuning.Status.SKIPPED, str(exc))
    except providers.ProviderError as exc:
        _finish(tuning_id, token, RetrievalTuning.Status.FAILED, str(exc))
    except Exception as exc:
        log.exception("Retrieval tuning %s failed", tuning_id)
        _finish(
            tuning_id,
            token,
            RetrievalTuning.Status.FAILED,
            f"Unexpected error while tuning ({exc.__class__.__name__}); the bot keeps its current model.",
        )
        raise
    tuning.refresh_from_db()
    return tuning.status


@shared_task(name="training.tasks.tune_retrieval", bind=True, acks_late=True, max_retries=None)
def tune_retrieval(self, tuning_id: int) -> str:
    status = tuning_run(tuning_id=tuning_id)
    if status == "busy":  # another tuning of the same bot is running: this one follows it
        raise self.retry(countdown=BUSY_RETRY_SECONDS)
    return status


def _faq_groups(bot: Bot) -> list[list[str]]:
    """Each FAQ entry's phrasings, exactly the texts its chunks were embedded from."""
    return [
        [question, *alternates]
        for question, alternates in FaqEntry.objects.filter(bot=bot)
        .order_by("pk")
        .values_list("question", "alternate_questions")
    ]


def _run(tuning: RetrievalTuning, token) -> None:
    bot = tuning.bot
    groups = _faq_groups(bot)
    base = providers.get_provider("local").default_embedding_model()
    # Unique across installations sharing one storage (and test runs): a key is never reused,
    # so a process can never load another model's weights under this name.
    key = f"t{tuning.pk}-{secrets.token_hex(4)}"
    model_name = f"{base}{providers.TUNED_SEPARATOR}{key}"
    TUNINGS.progress(
        tuning.pk,
        token,
        stage=gettext_noop("training"),
        base_model=base,
        model_name=model_name,
        entries=len(groups),
        phrasings=sum(len(g) for g in groups),
    )
    name, losses, train_seconds = _train_and_store(tuning, token, groups, key)
    try:
        TUNINGS.progress(
            tuning.pk,
            token,
            stage=gettext_noop("embedding"),
            weights=name,
            losses=losses,
            train_seconds=train_seconds,
            progress_done=0,
            progress_total=0,
        )
        chunk_ids, vectors = embed_chunks(
            bot,
            providers.get_provider("local"),
            model_name,
            lambda done, total: TUNINGS.progress(
                tuning.pk, token, progress_done=done, progress_total=total
            ),
        )
        TUNINGS.progress(tuning.pk, token, stage=gettext_noop("deploying"))
        _deploy(tuning, token, model_name, chunk_ids, vectors)
    except BaseException:
        if not RetrievalTuning.objects.filter(
            pk=tuning.pk, status=RetrievalTuning.Status.DEPLOYED
        ).exists():
            default_storage.delete(name)
        raise


def _train_and_store(tuning: RetrievalTuning, token, groups, key: str):
    """Train the tuned weights and store them under the key's name: (name, losses, seconds)."""
    started = time.perf_counter()
    # One phrasing of each entry with 3 or more stays out of training: the calibration
    # (training.calibration) scores the tuned model on exactly those, honest unseen questions.
    weights, losses = train_embedding_model(
        holdout_split(groups)[0],
        epochs=settings.RETRIEVAL_TUNING_EPOCHS,
        runs=settings.RETRIEVAL_TUNING_RUNS,
        batch_size=BATCH_SIZE,
        learning_rate=LEARNING_RATE,
        min_steps=MIN_STEPS,
        on_step=lambda done, total: TUNINGS.progress(
            tuning.pk, token, progress_done=done, progress_total=total
        ),
    )
    train_seconds = time.perf_counter() - started
    wanted = providers.tuned_weights_name(key)
    name = default_storage.save(wanted, ContentFile(weights))
    if name != wanted:  # the storage renamed it: providers could not find it
        default_storage.delete(name)
        raise providers.ProviderError("Could not store the tuned model under its name; try again.")
    return name, losses, train_seconds


def _deploy(tuning: RetrievalTuning, token, model_name: str, chunk_ids: list[int], vectors) -> None:
    with transaction.atomic():
        bot = Bot.objects.select_for_update().get(pk=tuning.bot_id)
        if not TUNINGS.owned(tuning.pk, token).select_for_update().exists():
            raise Superseded
        reason = tuning_unavailable_reason(bot) or (
            "" if bot.retrieval_tuning else "Tuning was turned off while it ran."
        )
        if reason:
            raise Skipped(reason)
        swap_vectors(bot, f"local:{model_name}", chunk_ids, vectors)
        tuned_models_retire(bot.pk, f"Replaced by tuning {tuning.pk}.")
        calibration_request(bot.pk)  # the scores moved: refit the thresholds
        serving.state_update(bot, tuned_embedding_model=model_name)
        _finish(
            tuning.pk,
            token,
            RetrievalTuning.Status.DEPLOYED,
            chunks=len(chunk_ids),
            progress_done=len(chunk_ids),
        )
    log.info(
        "Retrieval tuning %s deployed to bot %s (%d chunks)", tuning.pk, bot.pk, len(chunk_ids)
    )


# --- Recovery --------------------------------------------------------------------------------------


def tunings_recover_stuck(*, stale_seconds: int | None = None) -> dict:
    """Beat: re-queue tunings whose worker stopped (no progress for a while), or fail them after
    MAX_ATTEMPTS; re-send queued ones whose message was lost. Nothing stays "running" for ever."""
    stale = timedelta(
        seconds=settings.RETRIEVAL_TUNING_STALE_SECONDS if stale_seconds is None else stale_seconds
    )
    counts = TUNINGS.recover_stuck(
        stale=stale,
        max_attempts=MAX_ATTEMPTS,
        failure=f"Tuning was interrupted {MAX_ATTEMPTS} times (the worker stopped); the bot "
        "keeps its current model.",
        enqueue=_enqueue,
        failed_fields={"stage": ""},
        requeued_fields={"stage": gettext_noop("re-queued after an interruption")},
    )
    # A revert whose worker stopped: the bot still answers with its tuned model; ask again.
    reverts = list(
        Bot.objects.filter(retrieval_tuning=False, updated_at__lt=timezone.now() - stale)
        .filter(embedding_state__tuned_embedding_model__gt="")
        .values_list("pk", flat=True)
    )
    for bot_id in reverts:
        _enqueue_revert(bot_id)
    return {**counts, "reverts": len(reverts)}


@shared_task(name="training.tasks.recover_stuck_tunings")
def recover_stuck_tunings() -> dict:
    return tunings_recover_stuck()
