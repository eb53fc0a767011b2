"""Fixed-window rate limits counted in Redis (under the cache's key prefix), shared by every web process.

A limit is "count/seconds" (settings, from the environment). Each window is one Redis key that
expires with the window, so nothing needs cleaning up. A fixed window lets a burst of up to twice
the count straddle a boundary; that is acceptable for abuse protection, and every limit a request
checks is counted in one pipelined round trip.

Redis down: the limits fail open to a count kept in each web process (see `_count`), so the
chat keeps answering and a flood still meets a limit.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from dataclasses import dataclass
from functools import cache

import redis
from django.conf import settings
from django.core.cache import cache as django_cache
from redis.backoff import NoBackoff
from redis.retry import Retry

from askhandle.client_ip import client_ip as trusted_client_ip

log = logging.getLogger(__name__)

# A request pays at most this for a Redis that does not answer; after a failure the limits skip
# Redis for REDIS_RETRY_AFTER seconds, so an outage costs one slow request, not every request.
REDIS_TIMEOUT = 0.5
REDIS_RETRY_AFTER = 5.0


@dataclass(frozen=True)
class Limit:
    count: int
    seconds: int

    @classmethod
    def parse(cls, spec: str) -> Limit:
        count, _, seconds = spec.partition("/")
        return cls(int(count), int(seconds or 60))


class RateLimited(Exception):
    def __init__(self, scope: str, retry_after: int):
        super().__init__(f"Rate limit reached ({scope}); retry in {retry_after} s.")
        self.scope = scope
        self.retry_after = retry_after


@cache
def _redis(url: str) -> redis.Redis:
    return redis.Redis.from_url(
        url,
        socket_connect_timeout=REDIS_TIMEOUT,
        socket_timeout=REDIS_TIMEOUT,
        retry=Retry(NoBackoff(), 0),  # a retry would only double the wait of a chat message
    )


class _LocalCounts:
    """Fixed windows counted in this process: the stand-in while Redis is unreachable."""

    MAX_KEYS = 50_000  # a long outage with many visitors starts the counts afresh

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.counts: dict[str, tuple[int, int]] = {}  # key -> (window, count)
        self.redis_down_until: dict[str, float] = {}  # Redis URL -> when to try it again

    def incr(self, key: str, window: int) -> int:
        with self.lock:
            if len(self.counts) > self.MAX_KEYS:
                self.counts.clear()
            held, count = self.counts.get(key, (window, 0))
            count = count + 1 if held == window else 1
            self.counts[key] = (window, count)
            return count


_local = _LocalCounts()


def _count(limits: list[tuple[str, str, Limit]]) -> None:
    """Count one request against each (scope, key, limit), all in one Redis round trip.

    When Redis cannot be reached the limits fail open, to a per-process count. Failing closed
    would turn a cache outage into every customer's chat refusing to answer, which is certain
    harm, while the limits only guard against abuse; counting per process still caps a flood
    (at the number of web processes times each limit) instead of lifting the limits."""
    now = time.time()
    url = settings.REDIS_URL
    if now >= _local.redis_down_until.get(url, 0.0):
        try:
            used = _count_in_redis(url, limits, now)
        except redis.RedisError as exc:
            log.warning("Rate limits: Redis unavailable (%s); counting in this process.", exc)
            _local.redis_down_until[url] = now + REDIS_RETRY_AFTER
        else:
            _raise_if_over(limits, now, used)
            return
    used = [
        _local.incr(f"{scope}:{key}:{limit.seconds}", int(now // limit.seconds))
        for scope, key, limit in limits
    ]
    _raise_if_over(limits, now, used)


def _count_in_redis(url: str, limits: list[tuple[str, str, Limit]], now: float) -> list[int]:
    pipe = _redis(url).pipeline(transaction=False)
    for scope, key, limit in limits:
        window = int(now // limit.seconds)
        # The Django cache's key prefix keeps installs and parallel test runs apart.
        redis_key = django_cache.make_key(f"rl:{scope}:{key}:{window}")
        # NX: concurrent first hits never reset a count; the key expires with its window.
        pipe.set(redis_key, 0, ex=limit.seconds + 1, nx=True)
        pipe.incr(redis_key)
    return pipe.execute()[1::2]


def _raise_if_over(limits: list[tuple[str, str, Limit]], now: float, used: list[int]) -> None:
    for (scope, _, limit), count in zip(limits, used, strict=True):
        if count > limit.count:
            window = int(now // limit.seconds)
            raise RateLimited(scope, max(1, math.ceil((window + 1) * limit.seconds - now)))


def hit(scope: str, key: str, limit: Limit) -> None:
    """Count one request against `scope:key`; raise RateLimited once the window is full."""
    _count([(scope, key, limit)])


def check(*pairs: tuple[str, str, str]) -> None:
    """Apply several limits, given as (scope, key, spec) with spec like "20/60"."""
    if not settings.RATE_LIMITS_ENABLED:
        return
    _count([(scope, key, Limit.parse(spec)) for scope, key, spec in pairs])


def full(scope: str, key: str, spec: str) -> int | None:
    """Seconds until `scope:key`'s window ends when it is already full, else None. Counts
    nothing: for limits on failures, checked before the attempt and counted (check) only
    when it fails, so a success is never refused for what it cost and a blocked guess is
    never even tried. Redis down: the per-process count, as _count keeps it."""
    if not settings.RATE_LIMITS_ENABLED:
        return None
    limit = Limit.parse(spec)
    now = time.time()
    window = int(now // limit.seconds)
    url = settings.REDIS_URL
    used = None
    if now >= _local.redis_down_until.get(url, 0.0):
        try:
            raw = _redis(url).get(django_cache.make_key(f"rl:{scope}:{key}:{window}"))
        except redis.RedisError as exc:
            log.warning("Rate limits: Redis unavailable (%s); counting in this process.", exc)
            _local.redis_down_until[url] = now + REDIS_RETRY_AFTER
        else:
            used = int(raw or 0)
    if used is None:
        with _local.lock:
            held, count = _local.counts.get(f"{scope}:{key}:{limit.seconds}", (window, 0))
        used = count if held == window else 0
    if used < limit.count:
        return None
    return max(1, math.ceil((window + 1) * limit.seconds - now))


def client_ip(request) -> str:
    """The client's address: forwarded headers count only from settings.TRUSTED_PROXIES."""
    return trusted_client_ip(request)
