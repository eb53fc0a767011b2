import logging
import socket
import time

from celery import shared_task
from celery.signals import worker_ready
from django.core.cache import cache
from redis import RedisError

log = logging.getLogger(__name__)

HEARTBEAT_KEY = "worker-heartbeat"
HEARTBEAT_STALE_AFTER = 90  # seconds; beat sends one every 30 s


@shared_task(ignore_result=False)
def worker_heartbeat() -> dict:
    """Beat sends this every 30 s; the dashboard shows whether a worker answered lately."""
    beat = {"at": time.time(), "worker": socket.gethostname()}
    cache.set(HEARTBEAT_KEY, beat, timeout=3600)
    return beat


def heartbeat_status() -> dict:
    """{"online", "age", "worker"}; "queue_down" when Redis (cache and task queue) is unreachable:
    the footer says so instead of failing the page it is polled into."""
    try:
        beat = cache.get(HEARTBEAT_KEY)
    except RedisError as exc:
        log.warning("Worker status: Redis unavailable (%s)", exc)
        return {"online": False, "age": None, "queue_down": True}
    if not beat:
        return {"online": False, "age": None}
    age = time.time() - beat["at"]
    return {"online": age < HEARTBEAT_STALE_AFTER, "age": int(age), "worker": beat["worker"]}


@worker_ready.connect
def _beat_on_start(sender=None, **kwargs):
    # The dashboard shows "online" as soon as a worker is up, not 30 s later at the first beat.
    worker_heartbeat.apply()
