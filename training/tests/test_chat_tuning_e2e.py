"""A real Celery worker killed (SIGKILL) in the middle of a local LoRA run: the run is not left
"running"; beat's recovery re-queues it and the next run resumes from the stored checkpoint."""

import os
import signal
import time

import pytest
from django.core.files.storage import default_storage

from knowledge.tests.factories import SHOP_FAQ
from knowledge.tests.support import ingest_faqs
from providers.local import ADAPTER_FILES
from training import chat_tuning, chat_tuning_local
from training.models import ChatTuning

pytestmark = pytest.mark.e2e


@pytest.fixture
def small_runs(monkeypatch, settings):
    for name, value in {
        "ASKHANDLE_CHAT_TUNING_CHECKPOINT_STEPS": "2",
        "ASKHANDLE_TRAINING_THREADS": "1",
    }.items():
        monkeypatch.setenv(name, value)
    settings.CHAT_TUNING_MIN_EXAMPLES = 4
    settings.CHAT_TUNING_CHECKPOINT_STEPS = 2
    settings.TRAINING_TORCH_THREADS = 1


def test_a_killed_worker_leaves_a_checkpoint_the_recovered_run_resumes_from(
    small_runs, celery_worker_process, bot
):
    ingest_faqs(bot, SHOP_FAQ)
    run = chat_tuning.chat_tuning_launch(
        bot=bot, hyperparameters={"max_steps": 8, "batch_size": 2, "epochs": 2}
    )
    deadline = time.monotonic() + 180
    while not ChatTuning.objects.filter(pk=run.pk, checkpoint_step__gte=2).exists():
        assert time.monotonic() < deadline, celery_worker_process.log_path.read_text()[-3000:]
        time.sleep(0.2)
    os.killpg(celery_worker_process.pid, signal.SIGKILL)  # the worker and its child
    celery_worker_process.wait(timeout=30)
    run.refresh_from_db()
    assert run.status == ChatTuning.Status.RUNNING and 2 <= run.checkpoint_step < 8
    checkpoint = run.checkpoint_step

    # Beat finds no sign of life (stale after 0 s here) and re-queues the run.
    assert chat_tuning.chat_tunings_recover_stuck(stale_seconds=0)["requeued"] == 1
    chat_tuning_local.chat_tuning_run_local(run_id=run.pk)  # the next worker's delivery
    run.refresh_from_db()

    assert run.status == ChatTuning.Status.READY, run.error
    assert run.metrics["resumed_from"] == checkpoint and run.attempts == 2
    assert [s for s, _ in run.losses] == list(range(1, 9))
    for name in ADAPTER_FILES:
        assert default_storage.exists(f"{run.adapter}/{name}")
        default_storage.delete(f"{run.adapter}/{name}")
    default_storage.delete(run.training_file)
