"""A chat fine-tuning run at OpenAI (or an OpenAI-compatible fine-tuning API): a task uploads the
JSONL and creates the job, storing its id; beat polls its status and events
(chat_tunings_poll), so no worker waits. The tasks are defined here, beside their services;
training.tasks imports them."""

from __future__ import annotations

from celery import shared_task
from django.conf import settings
from django.core.files.storage import default_storage
from django.utils import timezone
from django.utils.translation import gettext_noop

import providers
from askhandle.jobs import GiveUpTask

from .chat_tuning_jobs import RUNS, stale_after
from .models import ChatTuning

# OpenAI job states that are final, and what they become here.
PROVIDER_FINAL = {
    "succeeded": ChatTuning.Status.READY,
    "failed": ChatTuning.Status.FAILED,
    "cancelled": ChatTuning.Status.CANCELLED,
}


def _openai():
    return providers.get_provider("openai")


def chat_tuning_submit(*, run_id: int) -> str:
    """Upload the set and create the provider job (a task); beat polls it from then on.
    A transient provider error puts the run back in the queue and re-raises (Celery retries)."""
    token = RUNS.claim(
        run_id, stale=stale_after(), stage=gettext_noop("uploading the training file")
    )
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
    """Record one provider job's new events and status on its run; True when the job is over."""
    metrics = dict(run.metrics or {})
    metrics.pop("last_poll_error", None)
    state = _openai().fine_tune_status(run.provider_job_id, after=metrics.get("last_event"))
    job = state["job"]
    total = _record_events(metrics, state["events"], run.progress_total)
    losses = metrics["losses"]
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
        fields.update(_final_fields(job, final))
        if job.get("trained_tokens"):
            metrics["trained_tokens"] = job["trained_tokens"]
    ChatTuning.objects.filter(pk=run.pk, status=ChatTuning.Status.RUNNING).update(**fields)
    return bool(final)


def _record_events(metrics: dict, events: list[dict], total: int) -> int:
    """Add the job's new events to the run's metrics: training losses to "losses", the rest's
    messages to "events" (the last 20 kept). Returns the total steps as the provider last gave
    them (`total` when it gave none)."""
    losses = metrics.setdefault("losses", [])
    messages = metrics.setdefault("events", [])
    for event in events:
        data = event.get("data") or {}
        if event.get("type") == "metrics" and "step" in data and "train_loss" in data:
            losses.append([int(data["step"]), round(float(data["train_loss"]), 4)])
            total = int(data.get("total_steps") or total)
        else:
            messages.append(event.get("message", ""))
        metrics["last_event"] = event["id"]
    metrics["events"] = messages[-20:]
    return total


def _final_fields(job: dict, final: str) -> dict:
    """The run's fields once its provider job is over: its status, the reason and the model."""
    error = ""
    if final == ChatTuning.Status.FAILED:
        error = "The provider's job failed: " + (
            (job.get("error") or {}).get("message") or "no reason given"
        )
    elif final == ChatTuning.Status.CANCELLED:
        error = "Cancelled at the provider."
    return dict(
        status=final,
        stage="",
        error=error,
        finished_at=timezone.now(),
        fine_tuned_model=job.get("fine_tuned_model") or "",
        model_name=job.get("fine_tuned_model") or "",
    )


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
