"""A worker killed mid-ingestion (finding 2): its run's heartbeat stops, the run is recognised as
dead within DEAD_AFTER (30 s) and taken over, resuming from the last staged batch."""

import os
import signal
import threading
import time

import pytest
from django.utils import timezone

from askhandle.devtools import start_celery_worker
from askhandle.jobs import DEAD_AFTER
from conftest import child_env, wait_for
from knowledge import ingest_steps, services
from knowledge.models import Chunk, FaqEntry, Source, StagedVector

pytestmark = pytest.mark.django_db(transaction=True)


def start_worker(log_path):
    return start_celery_worker(
        child_env(), log_path, name=f"killed{os.getpid()}-{time.monotonic_ns()}@%h"
    )


@pytest.mark.e2e
def test_killed_worker_is_taken_over_within_a_minute_and_resumes_from_the_last_batch(bot, tmp_path):
    entries = [
        {"question": f"Question number {i} about bike part {i * 7}?", "answer": f"Answer {i}."}
        for i in range(600)
    ]
    source = services.faq_entries_import(bot=bot, name="big", entries=entries, enqueue=False)
    first_log, second_log = tmp_path / "worker1.log", tmp_path / "worker2.log"
    first = start_worker(first_log)
    second = None
    try:
        services.source_requeue(source_id=source.pk)  # autocommit: sent at once
        # Mid-run: a batch staged and the run embedding (not between two time slices).
        wait_for(
            lambda: (
                (
                    StagedVector.objects.filter(source=source).count() >= 256
                    and (s := Source.objects.get(pk=source.pk)).status == Source.Status.PROCESSING
                    and s.stage == "embedding"
                )
                or Source.objects.get(pk=source.pk).status == Source.Status.FAILED
            ),
            180,
            "a batch to be embedded",
            first_log,
        )
        row = Source.objects.get(pk=source.pk)
        assert row.status == Source.Status.PROCESSING, (row.error, first_log.read_text()[-3000:])
        os.killpg(first.pid, signal.SIGKILL)  # the whole worker: main process and pool
        first.wait()
        killed_at = time.monotonic()
        staged = StagedVector.objects.filter(source=source).count()
        row = Source.objects.get(pk=source.pk)
        # Killed while embedding, or (when a time slice ended just before) waiting its turn.
        assert row.status in (Source.Status.PROCESSING, Source.Status.PENDING), row.status
        assert row.progress_done < row.progress_total

        second = start_worker(second_log)
        resumed_from = wait_for(
            lambda: (
                (s := Source.objects.get(pk=source.pk)).started_at != row.started_at  # a new claim
                and s.status == Source.Status.PROCESSING
                and s.stage == "embedding"
                and s.progress_total
                and s.progress_done
            ),
            60,
            "the new worker to take the source over",
            second_log,
        )
        taken_over = time.monotonic() - killed_at
        wait_for(
            lambda: Source.objects.get(pk=source.pk).status == Source.Status.READY,
            120,
            "the source to be ready",
            second_log,
        )
        ready = time.monotonic() - killed_at
    finally:
        for proc in (first, second):
            if proc is not None and proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
                proc.wait(timeout=30)
        if source.file:
            source.file.storage.delete(source.file.name)
    print(f"killed -> taken over {taken_over:.1f} s, -> ready {ready:.1f} s; {staged} staged")
    assert taken_over < DEAD_AFTER.total_seconds() + 20
    # How soon it is ready after that is the machine's embedding speed (49-60 s on 2 busy cores),
    # printed above, not asserted: what the test holds the worker to is resuming where the dead
    # one stopped.
    assert resumed_from >= staged  # the batches embedded before the kill were not embedded again
    source.refresh_from_db()
    assert source.attempts == row.attempts + 1 and source.chunk_count == 600
    assert Chunk.objects.filter(source=source).count() == 600
    assert FaqEntry.objects.filter(source=source).count() == 600
    assert not StagedVector.objects.filter(source=source).exists()


def test_a_run_shows_life_through_its_heartbeat_and_stops_when_superseded(bot):
    source = services.faq_entries_import(
        bot=bot, name="small", entries=[{"question": "Q?", "answer": "A."}], enqueue=False
    )
    token = ingest_steps.SOURCES.claim(source.pk)
    quiet = timezone.now() - DEAD_AFTER
    Source.objects.filter(pk=source.pk).update(updated_at=quiet)
    with ingest_steps.SOURCES.heartbeat(source.pk, token, every=0.2):
        time.sleep(1)  # a long model call: no progress written
        assert Source.objects.get(pk=source.pk).updated_at > quiet + DEAD_AFTER / 2
        assert ingest_steps.SOURCES.claim(source.pk) is None  # alive: not taken over
        beats = [t for t in threading.enumerate() if t.name == f"heartbeat-Source-{source.pk}"]
        assert len(beats) == 1 and beats[0].is_alive()
        services.source_requeue(source_id=source.pk)  # a newer request supersedes the run
        beats[0].join(timeout=2)
        assert not beats[0].is_alive()  # the heartbeat ended with the claim
