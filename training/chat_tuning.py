"""Chat fine-tuning: turn a bot's knowledge into a tuned chat model, run it, deploy and roll back.

One interface, two backends, every run's state on its ChatTuning row: local (default, offline:
a LoRA adapter trained by a Celery task, training.chat_tuning_local) and openai (OpenAI or an
OpenAI-compatible fine-tuning API, submitted and polled: training.chat_tuning_openai). This
module launches, cancels, recovers and deploys runs of either.

A launch validates the training set (training.datasets) first: nothing starts with errors, and
one run per bot at a time. The set that was validated is stored as JSONL beside the run, so the
run trains on exactly what the owner saw. A worker that dies leaves its run RUNNING with no sign
of life: beat (chat_tunings_recover_stuck) re-queues it and the next run resumes from its
checkpoint, or after MAX_ATTEMPTS claims fails it with the reason.

Versions: a finished run is READY; deploying it makes it the bot's one DEPLOYED run (the previous
one becomes REPLACED, still deployable: roll back) and switches the bot to the run's mode;
undeploying returns the bot to the base model (it answers with retrieval). chat.answering asks
deployed_chat_model() which model answers. Deleting a run (or its bot) deletes its files.
"""

from __future__ import annotations

import secrets
from datetime import timedelta

from celery import shared_task
from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.db import transaction
from django.db.models.signals import post_delete
from django.dispatch import receiver
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_noop

import providers
from bots.models import Bot

from . import datasets
from .chat_tuning_jobs import RUNS, stale_after
from .chat_tuning_local import train_chat_tuning
from .chat_tuning_openai import cancel_provider_tuning, submit_chat_tuning
from .models import ChatTuning

# A run whose worker died this many times is failed rather than re-queued again: a crash that
# repeats (out of memory on this set) would otherwise loop for ever.
MAX_ATTEMPTS = 3


def _lock_bot(bot_id: int) -> None:
    list(Bot.objects.select_for_update().filter(pk=bot_id).values_list("pk", flat=True))


def default_hyperparameters(backend: str) -> dict:
    if backend == ChatTuning.Backend.LOCAL:
        return {
            "epochs": settings.CHAT_TUNING_EPOCHS,
            "batch_size": settings.CHAT_TUNING_BATCH_SIZE,
            "learning_rate": settings.CHAT_TUNING_LEARNING_RATE,
            "lora_r": settings.CHAT_TUNING_LORA_R,
            "max_steps": settings.CHAT_TUNING_MAX_STEPS or None,
            "max_length": settings.CHAT_TUNING_MAX_TOKENS,
            "seed": 0,
        }
    return {"epochs": settings.CHAT_TUNING_EPOCHS, "batch_size": "auto"}


def _batch(hyper: dict) -> int:
    return hyper["batch_size"] if isinstance(hyper.get("batch_size"), int) else 8


def measured_speed() -> tuple[float, float] | None:
    """(seconds per step, tokens per example) of the last local run that finished here."""
    run = (
        ChatTuning.objects.filter(
            backend=ChatTuning.Backend.LOCAL,
            status__in=ChatTuning.DEPLOYABLE,
            metrics__has_key="seconds_per_step",
        )
        .order_by("-finished_at")
        .first()
    )
    if run is None:
        return None
    return run.metrics["seconds_per_step"], run.metrics.get("tokens_per_example") or 40.0


def backend_unavailable_reason(backend: str) -> str:
    if backend == ChatTuning.Backend.OPENAI and not (
        settings.OPENAI_API_KEY or settings.OPENAI_BASE_URL
    ):
        return _(
            "Fine-tuning with OpenAI needs OPENAI_API_KEY (or OPENAI_BASE_URL for a compatible "
            "service). The local backend needs neither."
        )
    return ""


def training_set_preview(*, bot: Bot, mode: str, backend: str) -> dict:
    """What the owner reads before launching: the set, its issues and the estimate."""
    training_set = datasets.build(bot, mode=mode, backend=backend)
    hyper = default_hyperparameters(backend)
    estimate = datasets.estimate(
        training_set,
        backend=backend,
        epochs=hyper["epochs"],
        batch_size=_batch(hyper),
        measured=measured_speed() if backend == ChatTuning.Backend.LOCAL else None,
    )
    if hyper.get("max_steps") and estimate["steps"] > hyper["max_steps"]:
        ratio = hyper["max_steps"] / estimate["steps"]
        estimate["steps"] = hyper["max_steps"]
        estimate["seconds"] = round((estimate["seconds"] or 0) * ratio)
    return {"set": training_set, "estimate": estimate, "hyperparameters": hyper}


# --- Launch, cancel ------------------------------------------------------------------------------


def chat_tuning_launch(
    *,
    bot: Bot,
    mode: str = ChatTuning.Mode.FINETUNED,
    backend: str = ChatTuning.Backend.LOCAL,
    hyperparameters: dict | None = None,
) -> ChatTuning:
    """Validate the bot's training set and queue a run. Raises ValidationError (nothing queued)
    for an unknown mode or backend, an invalid set, an unavailable backend, or while another run
    of the bot is active.
    Stores the set as JSONL in storage; the task starts after commit."""
    _check_launchable(bot, mode, backend)
    preview = training_set_preview(bot=bot, mode=mode, backend=backend)
    training_set = preview["set"]
    if training_set.errors:
        raise ValidationError([i.message for i in training_set.errors])
    key = f"c{secrets.token_hex(5)}"
    name = default_storage.save(
        f"chat-tuning-sets/{bot.pk}-{key}.jsonl", ContentFile(training_set.jsonl().encode())
    )
    try:
        with transaction.atomic():
            _lock_bot(bot.pk)
            active = ChatTuning.objects.filter(bot=bot, status__in=ChatTuning.ACTIVE).first()
            if active:  # a launch that raced this one won
                raise ValidationError(_busy(active))
            run = ChatTuning.objects.create(
                bot=bot,
                backend=backend,
                mode=mode,
                base_model=_base_model(backend),
                training_file=name,
                hyperparameters={**preview["hyperparameters"], **(hyperparameters or {})},
                examples=len(training_set.examples),
                held_out=training_set.held_out,
                estimate=preview["estimate"],
                metrics={"losses": []},
            )
            run.adapter = f"chat-adapters/{key}-{run.pk}"
            run.save(update_fields=["adapter"])
            _enqueue(run.pk, backend)
    except BaseException:
        default_storage.delete(name)
        raise
    return run


def _check_launchable(bot: Bot, mode: str, backend: str) -> None:
    """Raise ValidationError for an unknown mode or backend, an unavailable backend, or while
    another run of the bot is active (checked again under the bot's lock at creation)."""
    if mode not in ChatTuning.Mode.values or backend not in ChatTuning.Backend.values:
        raise ValidationError(
            _("Unknown mode or backend: %(mode)r, %(backend)r.")
            % {"mode": mode, "backend": backend}
        )
    reason = backend_unavailable_reason(backend)
    if reason:
        raise ValidationError(reason)
    active = ChatTuning.objects.filter(bot=bot, status__in=ChatTuning.ACTIVE).first()
    if active:
        raise ValidationError(_busy(active))


def _base_model(backend: str) -> str:
    if backend == ChatTuning.Backend.LOCAL:
        return providers.get_provider("local").default_chat_model()
    return settings.OPENAI_FINE_TUNING_MODEL


def _busy(active: ChatTuning) -> str:
    return _(
        "Fine-tuning run %(run)s is %(status)s: wait for it to finish or cancel it before "
        "starting another."
    ) % {"run": active.pk, "status": active.get_status_display().lower()}


def _enqueue(run_id: int, backend: str | None = None) -> None:
    if backend is None:
        backend = ChatTuning.objects.filter(pk=run_id).values_list("backend", flat=True).first()
    task = train_chat_tuning if backend == ChatTuning.Backend.LOCAL else submit_chat_tuning
    task.delay_on_commit(run_id)


def chat_tuning_cancel(*, run: ChatTuning) -> ChatTuning:
    """Cancel a run: a queued one at once; a running local one stops at its next step; a job at
    the provider is cancelled there (a task), and the poll records it."""
    now = timezone.now()
    reason = "Cancelled by the owner."
    if ChatTuning.objects.filter(pk=run.pk, status=ChatTuning.Status.QUEUED).update(
        status=ChatTuning.Status.CANCELLED, error=reason, finished_at=now, cancel_requested=True
    ):
        _delete_files_on_commit(run)
    elif ChatTuning.objects.filter(pk=run.pk, status=ChatTuning.Status.RUNNING).update(
        cancel_requested=True
    ):
        if run.backend == ChatTuning.Backend.OPENAI and run.provider_job_id:
            cancel_provider_tuning.delay_on_commit(run.pk)
    run.refresh_from_db()
    return run


# --- Recovery ------------------------------------------------------------------------------------


def chat_tunings_recover_stuck(*, stale_seconds: int | None = None) -> dict:
    """Beat: a local run with no sign of life for CHAT_TUNING_STALE_SECONDS (its worker died) is
    re-queued and resumes from its checkpoint, or fails after MAX_ATTEMPTS claims. Provider
    runs show life at every poll; one re-queued resumes polling (chat_tuning_openai)."""
    stale = stale_after() if stale_seconds is None else timedelta(seconds=stale_seconds)
    return RUNS.recover_stuck(
        stale=stale,
        max_attempts=MAX_ATTEMPTS,
        failure=f"Training was interrupted {MAX_ATTEMPTS} times (the worker stopped); the bot "
        "keeps answering with the model it had.",
        enqueue=_enqueue,
        failed_fields={"stage": ""},
        requeued_fields={"stage": gettext_noop("re-queued after an interruption")},
    )


@shared_task(name="training.tasks.recover_stuck_chat_tunings")
def recover_stuck_chat_tunings() -> dict:
    return chat_tunings_recover_stuck()


# --- Versions: deploy, roll back, back to the base model ---------------------------------------


def chat_tuning_deploy(*, run: ChatTuning) -> ChatTuning:
    """Make `run` the model the bot answers with in the run's mode (fine-tuned, or fine-tuned +
    retrieval), and switch the bot to that mode. The run deployed for that mode before becomes
    REPLACED (deployable again); a run of the other mode stays deployed, so the Compare page
    measures each tuned mode with the model trained for its prompt."""
    with transaction.atomic():
        _lock_bot(run.bot_id)
        run = ChatTuning.objects.select_for_update().get(pk=run.pk)
        if run.status not in ChatTuning.DEPLOYABLE:
            detail = f" ({run.error})" if run.error else ""
            raise ValidationError(
                _(
                    "Run %(run)s is %(status)s%(detail)s: only a finished run can be deployed. "
                    "The bot keeps answering with the model it has."
                )
                % {"run": run.pk, "status": run.get_status_display().lower(), "detail": detail}
            )
        if not run.served_model:
            raise ValidationError(_("Run %(run)s has no model to deploy.") % {"run": run.pk})
        if run.status == ChatTuning.Status.DEPLOYED:
            return run
        now = timezone.now()
        ChatTuning.objects.filter(
            bot_id=run.bot_id, status=ChatTuning.Status.DEPLOYED, mode=run.mode
        ).update(status=ChatTuning.Status.REPLACED, updated_at=now)
        run.status, run.deployed_at = ChatTuning.Status.DEPLOYED, now
        run.save(update_fields=["status", "deployed_at", "updated_at"])
        Bot.objects.filter(pk=run.bot_id).update(mode=run.mode, updated_at=now)
    return run


def chat_tuning_undeploy(*, bot: Bot) -> None:
    """Back to the base model: no tuned model answers; every mode answers with retrieval."""
    with transaction.atomic():
        _lock_bot(bot.pk)
        ChatTuning.objects.filter(bot=bot, status=ChatTuning.Status.DEPLOYED).update(
            status=ChatTuning.Status.REPLACED, updated_at=timezone.now()
        )


def deployed_run(bot: Bot, mode: str | None = None) -> ChatTuning | None:
    """The run deployed for `mode` (the bot's own by default), or None: a run is trained for one
    prompt (the question alone, or with retrieved passages) and answers in that mode only."""
    mode = bot.mode if mode is None else mode
    if mode == Bot.Mode.RAG:
        return None
    return ChatTuning.objects.filter(bot=bot, status=ChatTuning.Status.DEPLOYED, mode=mode).first()


def deployed_chat_model(bot: Bot) -> tuple[str, str] | None:
    """(provider name, model id) of the tuned model that answers for the bot in its mode, or
    None: it answers with retrieval (RAG)."""
    run = deployed_run(bot)
    if run is None or not run.served_model:
        return None
    return run.backend, run.served_model


# --- Files ---------------------------------------------------------------------------------------


def _delete_files_on_commit(run: ChatTuning) -> None:
    names = [run.training_file] if run.training_file else []
    if run.adapter:
        names += [f"{run.adapter}/{n}" for n in providers.ADAPTER_FILES]
        names += [f"{run.adapter}/checkpoint/{n}" for n in providers.ADAPTER_FILES]

    def delete() -> None:
        for name in names:
            default_storage.delete(name)

    transaction.on_commit(delete)


@receiver(post_delete, sender=ChatTuning, dispatch_uid="training.chat_tuning_files")
def _delete_files_with_run(sender, instance: ChatTuning, **kwargs) -> None:
    """A run deleted (with its bot, by cascade) takes its adapter and training set with it:
    bots (an earlier app) cannot know about training's files."""
    _delete_files_on_commit(instance)
