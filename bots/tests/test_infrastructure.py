"""The real stack: pgvector in PostgreSQL, Redis, a Celery worker process, the compose file."""

import os
import shutil
import subprocess
from pathlib import Path

import pytest
from django.core.cache import cache
from django.db import connection
from django.urls import reverse

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.django_db
def test_vector_column_round_trips_and_orders_by_cosine(bot):
    from knowledge.models import Chunk, Source

    source = Source.objects.create(bot=bot, kind="text", name="t")
    near = Chunk.objects.create(
        bot=bot, source=source, text="near", embedding=[1, 0, 0], embedding_model="m"
    )
    Chunk.objects.create(
        bot=bot, source=source, text="far", embedding=[0, 1, 0], embedding_model="m"
    )
    from pgvector.django import CosineDistance

    stored = Chunk.objects.get(pk=near.pk)
    assert list(stored.embedding) == [1.0, 0.0, 0.0]
    best = Chunk.objects.order_by(CosineDistance("embedding", [0.9, 0.1, 0])).first()
    assert best.text == "near"
    with connection.cursor() as cursor:
        cursor.execute("SELECT extversion FROM pg_extension WHERE extname = 'vector'")
        # As versions, not strings: "0.10" < "0.8" as text.
        version = tuple(int(part) for part in cursor.fetchone()[0].split(".")[:2])
        assert version >= (0, 8)


def test_redis_cache_is_real_redis():
    import redis
    from django.conf import settings

    cache.set("probe", {"n": 1}, 10)
    assert cache.get("probe") == {"n": 1}
    raw = redis.Redis.from_url(settings.REDIS_URL)
    assert raw.exists(cache.make_key("probe")) == 1
    assert 0 < raw.ttl(cache.make_key("probe")) <= 10


@pytest.mark.e2e
def test_task_runs_in_real_worker_and_django_sees_result(celery_worker_process):
    from bots.tasks import HEARTBEAT_KEY, heartbeat_status, worker_heartbeat

    cache.delete(HEARTBEAT_KEY)
    result = worker_heartbeat.delay()
    beat = result.get(timeout=30)
    assert beat["worker"]
    assert heartbeat_status()["online"] is True


@pytest.mark.e2e
def test_dashboard_shows_worker_online(celery_worker_process, admin_client):
    from bots.tasks import worker_heartbeat

    worker_heartbeat.delay().get(timeout=30)
    response = admin_client.get(reverse("bots:system_status"))
    assert b"workers online" in response.content


def test_docker_compose_file_validates(tmp_path):
    assert shutil.which("docker-compose"), "make test installs Debian's docker-compose"
    result = subprocess.run(
        ["docker-compose", "-f", str(ROOT / "docker-compose.yml"), "config", "-q"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={"PATH": os.environ["PATH"], "DJANGO_SECRET_KEY": "x" * 50},
    )
    assert result.returncode == 0, result.stderr


def test_every_beat_entry_names_a_task_the_worker_has():
    """A renamed task would leave beat sending messages no worker can run."""
    from django.conf import settings

    from askhandle.celery import app

    app.loader.import_default_modules()
    missing = {
        name: entry["task"]
        for name, entry in settings.CELERY_BEAT_SCHEDULE.items()
        if entry["task"] not in app.tasks
    }
    assert missing == {}
