"""Chat fine-tuning: turn a bot's knowledge into a tuned chat model, run it, deploy and roll back.

One interface, two backends, every run's state on its ChatTuning row:
- local (default, offline): a Celery task on the `training` queue trains a LoRA adapter on
  SmolLM2 (training.local_training.train_chat_adapter), on the GPU when there is one. Each step records
  its loss, the step of total and the time left (askhandle.jobs.ClaimedJobs.progress, which is
  also the run's sign of life) and checks the owner's cancel flag; every
  settings.CHAT_TUNING_CHECKPOINT_STEPS steps the adapter is saved to storage. A worker that dies
  leaves the row RUNNING with no sign of life: beat (chat_tunings_recover_stuck) re-queues it and
  the next run resumes from the checkpoint, or after MAX_ATTEMPTS claims fails it with the reason.
- openai (OpenAI or an OpenAI-compatible fine-tuning API): a task uploads the JSONL and creates
  the job, storing its id; beat polls status and events (chat_tunings_poll), so no worker waits.
The tasks are defined here, beside the services they run; training.tasks imports them for the
worker.

A launch validates the training set (training.datasets) first: nothing starts with errors, and
one run per bot at a time. The set that was validated is stored as JSONL beside the run, so the
run trains on exactly what the owner saw.

Versions: a finished run is READY; deploying it makes it the bot's one DEPLOYED run (the previous
one becomes REPLACED, still deployable: roll back) and switches the bot to the run's mode;
undeploying returns the bot to the base model (it answers with retrieval). chat.answer asks
deployed_chat_model() which model answers. Deleting a run (or its bot) deletes its files.
"""

from __future__ import annotations

import json
import logging
import secrets
import time
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
from askhandle.jobs import ClaimedJobs, GiveUpTask, Superseded
from bots.models import Bot

from . import datasets
from .local_training import train_chat_adapter
from .models import ChatTuning

log = logging.getLogger(__name__)

MAX_ATTEMPTS = 3
RUNS = ClaimedJobs(
    ChatTuning,
    waiting=ChatTuning.Status.QUEUED,
    running=ChatTuning.Status.RUNNING,
    failed=ChatTuning.Status.FAILED,
    reason_field="error",
)
# OpenAI job states that are final, and what they become here.
PROVIDER_FINAL = {
    "succeeded": ChatTuning.Status.READY,
    "failed": ChatTuning.Status.FAILED,
    "cancelled": ChatTuning.Status.CANCELLED,
}


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
    preview = training_set_preview(bot=bot, mode=mode, backend=backend)
    training_set = preview["set"]
    if training_set.errors:
        raise ValidationError([i.message for i in training_set.errors])
    hyper = {**preview["hyperparameters"], **(hyperparameters or {})}
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
                base_model=(
                    providers.get_provider("local").default_chat_model()
                    if backend == ChatTuning.Backend.LOCAL
                    else settings.OPENAI_FINE_TUNING_MODEL
                ),
                training_file=name,
                hyperparameters=hyper,
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


# --- Local runs ----------------------------------------------------------------------------------


def _stale() -> timedelta:
    return timedelta(seconds=settings.CHAT_TUNING_STALE_SECONDS)


def _read_set(run: ChatTuning) -> list[list[dict]]:
    with default_storage.open(run.training_file, "rb") as handle:
        return [
            json.loads(line)["messages"] for line in handle.read().decode().splitlines() if line
        ]


def _checkpoint_dir(run: ChatTuning) -> str:
    return f"{run.adapter}/checkpoint"


def _save_files(folder: str, files: dict[str, bytes]) -> None:
    for name, data in files.items():
        path = f"{folder}/{name}"
        default_storage.delete(path)  # replace: the storage must not rename it
        saved = default_storage.save(path, ContentFile(data))
        if saved != path:
            default_storage.delete(saved)
            raise providers.ProviderError(f"Could not store {path} under its name; try again.")


def _load_files(folder: str) -> dict[str, bytes] | None:
    try:
        out = {}
        for name in providers.ADAPTER_FILES:
            with default_storage.open(f"{folder}/{name}", "rb") as handle:
                out[name] = handle.read()
        return out
    except (FileNotFoundError, OSError):
        return None


def _delete_folder(folder: str) -> None:
    for name in providers.ADAPTER_FILES:
        default_storage.delete(f"{folder}/{name}")


def chat_tuning_run_local(*, run_id: int) -> str:
    """Train one queued local run (a task). Returns its final status ("" if not ours to run)."""
    token = RUNS.claim(run_id, stale=_stale(), stage=gettext_noop("loading the model"))
    if token is None:
        return ""
    run = ChatTuning.objects.select_related("bot").get(pk=run_id)
    try:
        _train(run, token)
    except Superseded:
        log.info("Chat tuning %s superseded; its work was dropped.", run_id)
    except providers.ProviderError as exc:
        RUNS.finish(run_id, token, ChatTuning.Status.FAILED, str(exc), stage="")
    except Exception as exc:
        log.exception("Chat tuning %s failed", run_id)
        RUNS.finish(
            run_id,
            token,
            ChatTuning.Status.FAILED,
            f"Unexpected error while training ({exc.__class__.__name__}: {exc}); the bot keeps "
            "answering with the model it had.",
            stage="",
        )
        raise
    run.refresh_from_db()
    return run.status


@shared_task(name="training.tasks.train_chat_tuning", acks_late=True)
def train_chat_tuning(run_id: int) -> str:
    """A local LoRA run; a second delivery finds the row claimed and does nothing."""
    return chat_tuning_run_local(run_id=run_id)


def _train(run: ChatTuning, token) -> None:
    hyper = run.hyperparameters
    conversations = _read_set(run)
    resume, losses = _resume_point(run)
    metrics = {
        **run.metrics,
        "losses": losses,
        "resumed_from": resume[0] if resume else 0,
        "tokens_per_example": (run.estimate or {}).get("tokens", 0) / max(1, run.examples),
    }
    RUNS.progress(
        run.pk,
        token,
        stage=gettext_noop("training"),
        base_model=providers.get_provider("local").default_chat_model(),
        metrics=metrics,
        progress_done=resume[0] if resume else 0,
    )
    started = time.perf_counter()
    first_step = resume[0] if resume else 0

    def on_step(step: int, total: int, loss: float) -> bool:
        metrics["losses"].append([step, loss])
        per_step = (time.perf_counter() - started) / max(1, step - first_step)
        metrics.update(
            seconds_per_step=round(per_step, 3), eta_seconds=round(per_step * (total - step))
        )
        RUNS.progress(run.pk, token, progress_done=step, progress_total=total, metrics=metrics)
        return ChatTuning.objects.filter(pk=run.pk, cancel_requested=True).exists()

    def on_checkpoint(step: int, files: dict[str, bytes]) -> None:
        _save_files(_checkpoint_dir(run), files)
        RUNS.progress(run.pk, token, checkpoint_step=step)

    result = train_chat_adapter(
        conversations,
        epochs=hyper["epochs"],
        batch_size=hyper["batch_size"],
        learning_rate=hyper["learning_rate"],
        max_steps=hyper.get("max_steps"),
        r=hyper.get("lora_r", 16),
        alpha=2 * hyper.get("lora_r", 16),
        max_length=hyper.get("max_length", settings.CHAT_TUNING_MAX_TOKENS),
        seed=hyper.get("seed", 0),
        resume=resume,
        on_step=on_step,
        on_checkpoint=on_checkpoint,
        checkpoint_every=settings.CHAT_TUNING_CHECKPOINT_STEPS,
    )
    seconds = time.perf_counter() - started
    metrics.update(device=result["device"], eta_seconds=0)
    _finish(run, token, result, metrics, seconds, providers.tuned_chat_model_name)


def _resume_point(run: ChatTuning):
    """(step and checkpoint files to resume from, or None; the losses recorded up to it)."""
    losses = [loss for loss in run.losses if loss[0] <= run.checkpoint_step]
    if not run.checkpoint_step:
        return None, losses
    files = _load_files(_checkpoint_dir(run))
    if files is None:  # the checkpoint is gone: start again from the base model
        return None, []
    return (run.checkpoint_step, files), losses


def _finish(run: ChatTuning, token, result: dict, metrics: dict, seconds: float, name_of) -> None:
    """A stopped run ends CANCELLED; a finished one stores its adapter and is READY."""
    if result["stopped"]:
        RUNS.finish(
            run.pk,
            token,
            ChatTuning.Status.CANCELLED,
            f"Cancelled by the owner at step {result['steps']}.",
            stage="",
            metrics=metrics,
            train_seconds=seconds,
        )
        _delete_folder(_checkpoint_dir(run))
        return
    RUNS.progress(run.pk, token, stage=gettext_noop("saving the adapter"))
    _save_files(run.adapter, result["files"])
    key = run.adapter.rsplit("/", 1)[-1]
    if not RUNS.finish(
        run.pk,
        token,
        ChatTuning.Status.READY,
        stage="",
        model_name=name_of(key),
        metrics=metrics,
        train_seconds=seconds,
        progress_done=result["steps"],
    ):
        raise Superseded
    _delete_folder(_checkpoint_dir(run))
    log.info("Chat tuning %s trained %d steps in %.0f s", run.pk, result["steps"], seconds)


# --- Provider runs (OpenAI-compatible fine-tuning API) ----------------------------------------


def _openai():
    return providers.get_provider("openai")


def chat_tuning_submit(*, run_id: int) -> str:
    """Upload the set and create the provider job (a task); beat polls it from then on.
    A transient provider error puts the run back in the queue and re-raises (Celery retries)."""
    token = RUNS.claim(run_id, stale=_stale(), stage=gettext_noop("uploading the training file"))
    if token is None:
        return ""
    run = ChatTuning.objects.select_related("bot").get(pk=run_id)
    if run.provider_job_id:  # re-queued after an interruption: the job exists, keep polling it
        RUNS.progress(run.pk, token, stage=gettext_noop("training at the provider"))
        return run.status
    try:
        with default_storage.open(run.training_file, "rb") as handle:
            jsonl = handle.read()
        hyper = {"n_epochs": run.hyperparameters.get("epochs", settings.CHAT_TUNING_EPOCHS)}
        submitted = _openai().fine_tune_submit(
            jsonl=jsonl,
            filename=f"askhandle-bot{run.bot_id}-run{run.pk}.jsonl",
            model=run.base_model,
            hyperparameters=hyper,
            suffix=run.bot.slug,
        )
    except providers.ProviderUnavailable:
        RUNS.owned(run.pk, token).update(
            status=ChatTuning.Status.QUEUED, stage=gettext_noop("retrying")
        )
        raise
    except providers.ProviderError as exc:
        RUNS.finish(run.pk, token, ChatTuning.Status.FAILED, str(exc), stage="")
        return ChatTuning.Status.FAILED
    job = submitted["job"]
    RUNS.progress(
        run.pk,
        token,
        stage=gettext_noop("training at the provider"),
        provider_file_id=submitted["file_id"],
        provider_job_id=job["id"],
        provider_status=job.get("status") or "",
    )
    if ChatTuning.objects.filter(pk=run.pk, cancel_requested=True).exists():
        # The owner cancelled while the file was uploading: cancel the job just created.
        cancel_provider_tuning.delay(run.pk)
    return ChatTuning.Status.RUNNING


def chat_tuning_give_up(run_id: int, *, error: str) -> None:
    """GiveUpTask: the provider stayed unavailable through every retry."""
    ChatTuning.objects.filter(pk=run_id, status__in=ChatTuning.ACTIVE).update(
        status=ChatTuning.Status.FAILED, error=error, finished_at=timezone.now(), stage=""
    )


@shared_task(
    name="training.tasks.submit_chat_tuning",
    base=GiveUpTask,
    acks_late=True,
    autoretry_for=(providers.ProviderUnavailable,),
    retry_backoff=10,
    retry_backoff_max=600,
    max_retries=5,
    give_up=staticmethod(chat_tuning_give_up),
)
def submit_chat_tuning(run_id: int) -> str:
    """Upload the set and create the job at the provider; beat polls it (poll_chat_tunings)."""
    return chat_tuning_submit(run_id=run_id)


def chat_tunings_poll() -> dict:
    """Beat: read every provider job's status and new events; record losses, progress and the
    result. A provider that is down now is asked again at the next beat."""
    counts = {"polled": 0, "finished": 0, "unavailable": 0}
    for run in ChatTuning.objects.filter(
        backend=ChatTuning.Backend.OPENAI, status=ChatTuning.Status.RUNNING
    ).exclude(provider_job_id=""):
        counts["polled"] += 1
        try:
            finished = _poll_one(run)
        except providers.ProviderUnavailable as exc:
            counts["unavailable"] += 1
            ChatTuning.objects.filter(pk=run.pk, status=ChatTuning.Status.RUNNING).update(
                metrics={**run.metrics, "last_poll_error": str(exc)[:300]},
                updated_at=timezone.now(),
            )
            continue
        except providers.ProviderError as exc:
            ChatTuning.objects.filter(pk=run.pk, status=ChatTuning.Status.RUNNING).update(
                status=ChatTuning.Status.FAILED,
                error=str(exc),
                finished_at=timezone.now(),
                stage="",
            )
            finished = True
        counts["finished"] += int(finished)
    return counts


@shared_task(name="training.tasks.poll_chat_tunings")
def poll_chat_tunings() -> dict:
    return chat_tunings_poll()


def _poll_one(run: ChatTuning) -> bool:
    metrics = dict(run.metrics or {})
    metrics.pop("last_poll_error", None)
    state = _openai().fine_tune_status(run.provider_job_id, after=metrics.get("last_event"))
    job, events = state["job"], state["events"]
    losses = metrics.setdefault("losses", [])
    messages = metrics.setdefault("events", [])
    total = run.progress_total
    for event in events:
        data = event.get("data") or {}
        if event.get("type") == "metrics" and "step" in data and "train_loss" in data:
            losses.append([int(data["step"]), round(float(data["train_loss"]), 4)])
            total = int(data.get("total_steps") or total)
        else:
            messages.append(event.get("message", ""))
        metrics["last_event"] = event["id"]
    metrics["events"] = messages[-20:]
    status = job.get("status") or ""
    fields = dict(
        provider_status=status,
        metrics=metrics,
        progress_done=losses[-1][0] if losses else 0,
        progress_total=total,
        updated_at=timezone.now(),
        stage=f"{status.replace('_', ' ')} at the provider",
    )
    final = PROVIDER_FINAL.get(status)
    if final:
        error = ""
        if final == ChatTuning.Status.FAILED:
            error = "The provider's job failed: " + (
                (job.get("error") or {}).get("message") or "no reason given"
            )
        elif final == ChatTuning.Status.CANCELLED:
            error = "Cancelled at the provider."
        fields.update(
            status=final,
            stage="",
            error=error,
            finished_at=timezone.now(),
            fine_tuned_model=job.get("fine_tuned_model") or "",
            model_name=job.get("fine_tuned_model") or "",
        )
        if job.get("trained_tokens"):
            metrics["trained_tokens"] = job["trained_tokens"]
    ChatTuning.objects.filter(pk=run.pk, status=ChatTuning.Status.RUNNING).update(**fields)
    return bool(final)


def chat_tuning_cancel_at_provider(*, run_id: int) -> None:
    run = ChatTuning.objects.filter(pk=run_id, status=ChatTuning.Status.RUNNING).first()
    if run and run.provider_job_id:
        _openai().fine_tune_cancel(run.provider_job_id)


@shared_task(
    name="training.tasks.cancel_provider_tuning",
    acks_late=True,
    autoretry_for=(providers.ProviderUnavailable,),
    retry_backoff=10,
    max_retries=5,
)
def cancel_provider_tuning(run_id: int) -> None:
    chat_tuning_cancel_at_provider(run_id=run_id)


# --- Recovery ------------------------------------------------------------------------------------


def chat_tunings_recover_stuck(*, stale_seconds: int | None = None) -> dict:
    """Beat: a local run with no sign of life for CHAT_TUNING_STALE_SECONDS (its worker died) is
    re-queued and resumes from its checkpoint, or fails after MAX_ATTEMPTS claims. Provider
    runs show life at every poll; one re-queued resumes polling (chat_tuning_submit)."""
    stale = _stale() if stale_seconds is None else timedelta(seconds=stale_seconds)
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
    """Make `run` the model the bot's fine-tuned and both modes answer with, and switch the bot
    to the run's mode. The previously deployed run becomes REPLACED (deployable again)."""
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
        ChatTuning.objects.filter(bot_id=run.bot_id, status=ChatTuning.Status.DEPLOYED).update(
            status=ChatTuning.Status.REPLACED, updated_at=now
        )
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


def deployed_chat_model(bot: Bot) -> tuple[str, str] | None:
    """(provider name, model id) of the tuned model that answers for the bot in fine-tuned and
    both modes, or None: it answers with retrieval (RAG)."""
    if bot.mode == Bot.Mode.RAG:
        return None
    run = (
        ChatTuning.objects.filter(bot=bot, status=ChatTuning.Status.DEPLOYED)
        .only("backend", "model_name", "fine_tuned_model")
        .first()
    )
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
