"""A worker killed mid-ingestion (finding 2): its run's heartbeat stops, the run is recognised as
dead within DEAD_AFTER (30 s) and taken over, resuming from the last staged batch."""

import os
import signal
import subprocess
import sys
import threading
import time

import pytest
from django.conf import settings
from django.utils import timezone

from askhandle.jobs import DEAD_AFTER
from conftest import ROOT, child_env
from knowledge import services
from knowledge.models import Chunk, FaqEntry, Source, StagedVector

pytestmark = pytest.mark.django_db(transaction=True)


def start_worker(log_path) -> subprocess.Popen:
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "askhandle",
            "worker",
            "-Q",
            "default,ingest,training",
            "-c",
            "1",
            "--loglevel",
            "INFO",
            "-n",
            f"killed{os.getpid()}-{time.monotonic_ns()}@%h",
        ],
        cwd=ROOT,
        # The upload lies in this test's media folder (knowledge/tests/conftest.py).
        env={**child_env(), "DJANGO_MEDIA_ROOT": str(settings.MEDIA_ROOT)},
        stdout=log_path.open("w"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    deadline = time.monotonic() + 90
    while "ready." not in log_path.read_text():
        if proc.poll() is not None or time.monotonic() > deadline:
            os.killpg(proc.pid, signal.SIGKILL)
            pytest.fail(f"Celery worker did not start:\n{log_path.read_text()[-3000:]}")
        time.sleep(0.2)
    return proc


def wait_for(predicate, timeout: float, what: str, logs=()):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if value := predicate():
            return value
        time.sleep(0.1)
    tails = "\n".join(path.read_text()[-3000:] for path in logs)
    pytest.fail(f"Timed out waiting for {what}\n{tails}")


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
            [first_log],
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
            [second_log],
        )
        taken_over = time.monotonic() - killed_at
        wait_for(
            lambda: Source.objects.get(pk=source.pk).status == Source.Status.READY,
            120,
            "the source to be ready",
            [second_log],
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
    token = services.SOURCES.claim(source.pk)
    quiet = timezone.now() - DEAD_AFTER
    Source.objects.filter(pk=source.pk).update(updated_at=quiet)
    with services.SOURCES.heartbeat(source.pk, token, every=0.2):
        time.sleep(1)  # a long model call: no progress written
        assert Source.objects.get(pk=source.pk).updated_at > quiet + DEAD_AFTER / 2
        assert services.SOURCES.claim(source.pk) is None  # alive: not taken over
        beats = [t for t in threading.enumerate() if t.name == f"heartbeat-Source-{source.pk}"]
        assert len(beats) == 1 and beats[0].is_alive()
        services.source_requeue(source_id=source.pk)  # a newer request supersedes the run
        beats[0].join(timeout=2)
        assert not beats[0].is_alive()  # the heartbeat ended with the claim
