"""A local chat fine-tuning run (the default backend, offline): a Celery task on the `training`
queue trains a LoRA adapter on SmolLM2 (training.local_training.train_chat_adapter), on the GPU
when there is one. Each step records its loss, the step of total and the time left
(askhandle.jobs.ClaimedJobs.progress, which is also the run's sign of life) and checks the
owner's cancel flag; every settings.CHAT_TUNING_CHECKPOINT_STEPS steps the adapter is saved to
storage, and a run re-queued after its worker died resumes from there (training.chat_tuning
recovers it). The task is defined here, beside its service; training.tasks imports it."""

from __future__ import annotations

import json
import logging
import time

from celery import shared_task
from django.conf import settings
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.utils.translation import gettext_noop

import providers
from askhandle.jobs import Superseded

from .chat_tuning_jobs import RUNS, stale_after
from .local_training import train_chat_adapter
from .models import ChatTuning

log = logging.getLogger(__name__)


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
    token = RUNS.claim(run_id, stale=stale_after(), stage=gettext_noop("loading the model"))
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
