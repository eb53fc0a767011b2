"""End to end with a real Celery worker process: upload -> queue -> ingest, and recovery after a
worker process is SIGKILLed mid-ingest."""

import os
import re
import signal
import subprocess

import pytest
from django.urls import reverse

from conftest import wait_for
from knowledge import services
from knowledge.models import Chunk, FaqEntry, Source

from .factories import upload

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


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
        "the source to be ingested",
        celery_worker_process.log_path,
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

    wait_for(embedding_started, 120, "embedding to start", celery_worker_process.log_path)
    children = pool_children(celery_worker_process.pid)
    assert children, "no pool process to kill"
    for pid in children:
        os.kill(pid, signal.SIGKILL)

    # The worker redelivers the lost task (reject_on_worker_lost); the claim is still held and
    # fresh, so that delivery does nothing: no duplicate run, the row stays as it was.
    log = celery_worker_process.log_path
    noticed = wait_for(
        lambda: (at := log.read_text().find("exited with 'signal 9")) >= 0 and at,
        30,
        "the worker to notice",
        log,
    )
    # The message that was running (the last received before the kill), delivered again.
    lost = re.findall(r"ingest_source\[([\w-]+)\] received", log.read_text()[:noticed])[-1]
    # Instead of waiting a while for nothing to happen: that delivery has run in the new pool
    # process and ended.
    wait_for(
        lambda: f"ingest_source[{lost}] succeeded" in log.read_text()[noticed:],
        60,
        "the lost task's redelivery to end",
        log,
    )
    stuck = Source.objects.get(pk=source.pk)
    assert stuck.status == Source.Status.PROCESSING and stuck.attempts == 1
    assert not Chunk.objects.filter(source=source).exists()

    # Beat's recovery, with the stale timeout passed: requeue, and a live worker finishes it.
    result = services.sources_recover_stuck(stale_seconds=0)
    assert result["requeued"] == 1
    wait_for(
        lambda: Source.objects.get(pk=source.pk).status == Source.Status.READY,
        180,
        "the requeued ingestion",
        celery_worker_process.log_path,
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
        "the source to be ingested",
        celery_worker_process.log_path,
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
        "the switch to finish",
        celery_worker_process.log_path,
    )
    assert b"2 chunks re-embedded" in response.content
    job = Reembedding.objects.get(bot=bot)
    assert job.status == Reembedding.Status.DONE and job.attempts == 1
    bot.refresh_from_db()
    assert bot.embedding_state.serving_embedding == ""
    assert set(Chunk.objects.filter(bot=bot).values_list("embedding_model", flat=True)) == {
        "openai:text-embedding-3-small"
    }
    assert search(bot=bot, query="Do you deliver?")[0].answer == "Yes within 2 days."
