"""PostgreSQL goes away during an ingestion (issue 14): every connection to this run's test
database is cut (pg_terminate_backend, what a restart does to clients; the shared server itself
is not restarted). The task retries, the dead run's claim is taken over once its heartbeat
stops, and the source ends READY with one set of chunks, resuming from its staged batches."""

import os
import signal
import time

import pytest

from askhandle.devtools import start_celery_worker
from conftest import child_env, terminate_other_connections, wait_for
from knowledge import services
from knowledge.models import Chunk, FaqEntry, Source, StagedVector
from knowledge.tests.support import numbered_entries

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.mark.e2e
def test_an_ingestion_whose_database_connections_are_cut_finishes_by_itself(bot, tmp_path):
    source = services.faq_entries_import(
        bot=bot, name="big", entries=numbered_entries(600), enqueue=False
    )
    log = tmp_path / "worker.log"
    worker = start_celery_worker(
        {**child_env(), "ASKHANDLE_INGEST_SLICE_SECONDS": "0"},
        log,
        name=f"dbcut{os.getpid()}-{time.monotonic_ns()}@%h",
    )
    try:
        services.source_requeue(source_id=source.pk)
        wait_for(lambda: StagedVector.objects.filter(source=source).exists(), 120, "a batch", log)
        cut = terminate_other_connections()
        cut_at = time.monotonic()
        # A write acknowledged while the worker is cut off stays.
        entry = services.faq_entry_create(bot=bot, question="Open on Sunday?", answer="No.")
        wait_for(
            lambda: Source.objects.get(pk=source.pk).status == Source.Status.READY,
            150,
            "the source to be ready",
            log,
        )
        seconds = time.monotonic() - cut_at
    finally:
        os.killpg(worker.pid, signal.SIGTERM)
        worker.wait(timeout=30)
        if source.file:
            source.file.storage.delete(source.file.name)
    print(f"{cut} connections cut; the source was ready {seconds:.0f} s later")
    assert cut >= 1
    assert "lost the database; the task retries" in log.read_text()
    source.refresh_from_db()
    assert source.chunk_count == 600 and source.attempts == 2
    assert Chunk.objects.filter(source=source).count() == 600
    assert not StagedVector.objects.filter(source=source).exists()
    assert FaqEntry.objects.filter(pk=entry.pk).exists()
