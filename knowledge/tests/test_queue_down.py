"""The task queue (Redis) down while the owner edits knowledge: the write returns at once, the
row stays PENDING, and beat's next sweep re-sends it once Redis answers again."""

import socket
import time

import pytest
import redis
from django.conf import settings as django_settings
from django.urls import reverse

from askhandle.celery import app
from knowledge import services
from knowledge.models import FaqEntry, Source
from knowledge.tasks import ingest_source

pytestmark = pytest.mark.django_db


def _point_broker(url: str) -> None:
    # The app keeps its connection pools (kombu keeps one per URL): forget them, so the next
    # publish takes the pool of `url`.
    app._pool = None
    app.amqp._producer_pool = None
    app.conf.broker_url = url


@pytest.fixture
def broker_down():
    with socket.socket() as s:  # bound, never listening: connections are refused
        s.bind(("127.0.0.1", 0))
        closed = f"redis://127.0.0.1:{s.getsockname()[1]}/0"
    real = app.conf.broker_url
    _point_broker(closed)
    yield
    _point_broker(real)


def ingest_queue_length() -> int:
    raw = redis.Redis.from_url(django_settings.REDIS_URL)
    return raw.llen(f"{django_settings.REDIS_PREFIX}:ingest")


@pytest.fixture
def empty_ingest_queue():
    raw = redis.Redis.from_url(django_settings.REDIS_URL)
    raw.delete(f"{django_settings.REDIS_PREFIX}:ingest")
    yield
    raw.delete(f"{django_settings.REDIS_PREFIX}:ingest")


def test_saving_an_faq_entry_returns_at_once_and_beat_sends_it_when_redis_is_back(
    owner_client, bot, broker_down, empty_ingest_queue, django_capture_on_commit_callbacks
):
    started = time.monotonic()
    with django_capture_on_commit_callbacks(execute=True):
        response = owner_client.post(
            reverse("knowledge:faq_create", args=[bot.pk]),
            {"question": "Do you ship abroad?", "answer": "Yes, to 30 countries."},
        )
    took = time.monotonic() - started
    assert response.status_code == 302, response.content[:500]
    assert took < 3, f"the save waited {took:.1f} s on the task queue"
    entry = FaqEntry.objects.get(bot=bot)
    source = Source.objects.get(pk=entry.source_id)
    assert source.status == Source.Status.PENDING

    # Redis is back: beat's sweep (every minute) re-sends the row; a worker then ingests it.
    _point_broker(django_settings.CELERY_BROKER_URL)
    with django_capture_on_commit_callbacks(execute=True):
        assert services.sources_recover_stuck() == {"requeued": 0, "failed": 0, "resent": 1}
    assert ingest_queue_length() == 1
    ingest_source.apply((source.pk,))
    source.refresh_from_db()
    assert source.status == Source.Status.READY and source.chunk_count == 1


def test_a_queued_ingestion_that_was_sent_is_not_sent_again_by_the_sweep(
    bot, empty_ingest_queue, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        services.faq_entry_create(bot=bot, question="Do you ship abroad?", answer="Yes.")
    assert ingest_queue_length() == 1
    with django_capture_on_commit_callbacks(execute=True):
        assert services.sources_recover_stuck()["resent"] == 0
    assert ingest_queue_length() == 1
