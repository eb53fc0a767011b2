"""Fixed-window rate limits counted in Redis (under the cache's key prefix), shared by every web process.

A limit is "count/seconds" (settings, from the environment). Each window is one Redis key that
expires with the window, so nothing needs cleaning up. A fixed window lets a burst of up to twice
the count straddle a boundary; that is acceptable for abuse protection, and every limit a request
checks is counted in one pipelined round trip.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from functools import cache

import redis
from django.conf import settings
from django.core.cache import cache as django_cache


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
def _redis() -> redis.Redis:
    return redis.Redis.from_url(settings.REDIS_URL)


def _count(limits: list[tuple[str, str, Limit]]) -> None:
    """Count one request against each (scope, key, limit), all in one Redis round trip."""
    now = time.time()
    pipe = _redis().pipeline(transaction=False)
    windows = []
    for scope, key, limit in limits:
        window = int(now // limit.seconds)
        # The Django cache's key prefix keeps installs and parallel test runs apart.
        redis_key = django_cache.make_key(f"rl:{scope}:{key}:{window}")
        # NX: concurrent first hits never reset a count; the key expires with its window.
        pipe.set(redis_key, 0, ex=limit.seconds + 1, nx=True)
        pipe.incr(redis_key)
        windows.append(window)
    used = pipe.execute()[1::2]
    for (scope, _, limit), window, count in zip(limits, windows, used, strict=True):
        if count > limit.count:
            raise RateLimited(scope, max(1, math.ceil((window + 1) * limit.seconds - now)))


def hit(scope: str, key: str, limit: Limit) -> None:
    """Count one request against `scope:key`; raise RateLimited once the window is full."""
    _count([(scope, key, limit)])


def check(*pairs: tuple[str, str, str]) -> None:
    """Apply several limits, given as (scope, key, spec) with spec like "20/60"."""
    if not settings.RATE_LIMITS_ENABLED:
        return
    _count([(scope, key, Limit.parse(spec)) for scope, key, spec in pairs])


def client_ip(request) -> str:
    header = settings.CLIENT_IP_HEADER
    if header and request.META.get(header):
        # The proxy appends the address it saw last; that is the one it vouches for.
        return request.META[header].split(",")[-1].strip()
    return request.META.get("REMOTE_ADDR", "") or "unknown"
