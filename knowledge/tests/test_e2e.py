"""End to end with a real Celery worker process: upload -> queue -> ingest, and recovery after a
worker process is SIGKILLed mid-ingest."""

import os
import signal
import subprocess
import time

import pytest
from django.urls import reverse

from knowledge import services
from knowledge.models import Chunk, FaqEntry, Source

from .factories import upload

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


def wait_for(predicate, timeout: float, proc=None, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    log = proc.log_path.read_text()[-3000:] if proc is not None else ""
    pytest.fail(f"Timed out waiting for {what}\n{log}")


def pool_children(pid: int) -> list[int]:
    out = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout
    return [int(line) for line in out.split()]


@pytest.fixture
def cleanup_files():
    sources = []
    yield sources
    for source in sources:
        if source.file:
            source.file.storage.delete(source.file.name)


def test_upload_is_ingested_by_the_worker_and_polling_stops(
    celery_worker_process, owner_client, bot, cleanup_files
):
    csv = "question,answer\nDo you deliver?,Yes within 2 days.\nDo you repair e-bikes?,Yes all brands.\n"
    response = owner_client.post(
        reverse("knowledge:source_add", args=[bot.pk]), {"file": upload("faq.csv", csv)}
    )
    assert response.status_code == 302
    source = Source.objects.get(bot=bot)
    cleanup_files.append(source)
    row = reverse("knowledge:source_row", args=[bot.pk, source.pk])
    response = wait_for(
        lambda: (r := owner_client.get(row, HTTP_HX_REQUEST="true")).status_code == 286 and r,
        120,
        celery_worker_process,
        "the source to be ingested",
    )
    assert b"Ready" in response.content
    source.refresh_from_db()
    assert source.status == Source.Status.READY and source.chunk_count == 2 and source.attempts == 1


def test_worker_killed_mid_ingest_is_recovered_with_one_set_of_chunks(
    celery_worker_process, bot, cleanup_files
):
    entries = [
        {"question": f"Question number {i} about bikes?", "answer": f"Answer {i}."}
        for i in range(700)
    ]
    source = services.faq_entries_import(bot=bot, name="big", entries=entries)
    cleanup_files.append(source)

    def embedding_started():
        s = Source.objects.get(pk=source.pk)
        return (
            s.status == Source.Status.PROCESSING
            and s.progress_done > 0
            and s.progress_done < s.progress_total
        )

    wait_for(embedding_started, 120, celery_worker_process, "embedding to start")
    children = pool_children(celery_worker_process.pid)
    assert children, "no pool process to kill"
    for pid in children:
        os.kill(pid, signal.SIGKILL)

    # The worker redelivers the lost task (reject_on_worker_lost); the claim is still held and
    # fresh, so that delivery does nothing: no duplicate run, the row stays as it was.
    wait_for(
        lambda: "exited with 'signal 9" in celery_worker_process.log_path.read_text(),
        30,
        celery_worker_process,
        "the worker to notice",
    )
    time.sleep(3)
    stuck = Source.objects.get(pk=source.pk)
    assert stuck.status == Source.Status.PROCESSING and stuck.attempts == 1
    assert not Chunk.objects.filter(source=source).exists()

    # Beat's recovery, with the stale timeout passed: requeue, and a live worker finishes it.
    result = services.sources_recover_stuck(stale_seconds=0)
    assert result["requeued"] == 1
    wait_for(
        lambda: Source.objects.get(pk=source.pk).status == Source.Status.READY,
        180,
        celery_worker_process,
        "the requeued ingestion",
    )
    source.refresh_from_db()
    assert source.attempts == 2 and source.chunk_count == 700
    assert Chunk.objects.filter(source=source).count() == 700
    assert FaqEntry.objects.filter(source=source).count() == 700


def test_switching_embedding_model_runs_on_the_worker_while_the_old_vectors_answer(
    openai_server, celery_worker_process, owner_client, bot, cleanup_files
):
    from bots.models import Bot
    from knowledge.models import Reembedding
    from knowledge.selectors import search

    csv = "question,answer\nDo you deliver?,Yes within 2 days.\nDo you repair e-bikes?,Yes all brands.\n"
    owner_client.post(
        reverse("knowledge:source_add", args=[bot.pk]), {"file": upload("faq.csv", csv)}
    )
    source = Source.objects.get(bot=bot)
    cleanup_files.append(source)
    wait_for(
        lambda: Source.objects.get(pk=source.pk).status == Source.Status.READY,
        120,
        celery_worker_process,
        "the source to be ingested",
    )
    form = {
        "name": bot.name,
        "slug": bot.slug,
        "greeting": bot.greeting,
        "instructions": bot.instructions,
        "mode": bot.mode,
        "fallback_message": bot.fallback_message,
        "provider": "openai",
        "embedding_model": "",
        "chat_model": "",
        "direct_threshold": bot.direct_threshold,
        "answer_threshold": bot.answer_threshold,
        "primary_colour": bot.primary_colour,
    }
    assert owner_client.post(reverse("bots:edit", args=[bot.pk]), form).status_code == 302
    # Whatever the worker has reached, every search finds the FAQ: old vectors or new ones.
    assert search(bot=Bot.objects.get(pk=bot.pk), query="Do you deliver?")[0].answer == (
        "Yes within 2 days."
    )
    panel = reverse("knowledge:reembedding", args=[bot.pk])
    response = wait_for(
        lambda: (r := owner_client.get(panel, HTTP_HX_REQUEST="true")).status_code == 286 and r,
        120,
        celery_worker_process,
        "the switch to finish",
    )
    assert b"2 chunks re-embedded" in response.content
    job = Reembedding.objects.get(bot=bot)
    assert job.status == Reembedding.Status.DONE and job.attempts == 1
    bot.refresh_from_db()
    assert bot.serving_embedding == ""
    assert set(Chunk.objects.filter(bot=bot).values_list("embedding_model", flat=True)) == {
        "openai:text-embedding-3-small"
    }
    assert search(bot=bot, query="Do you deliver?")[0].answer == "Yes within 2 days."
