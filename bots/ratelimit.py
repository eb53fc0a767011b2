"""Fixed-window rate limits counted in Redis (the Django cache), shared by every web process.

A limit is "count/seconds" (settings, from the environment). Each window is one Redis key that
expires with the window, so nothing needs cleaning up. A fixed window lets a burst of up to twice
the count straddle a boundary; that is acceptable for abuse protection and costs two round trips.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

from django.conf import settings
from django.core.cache import cache


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


def hit(scope: str, key: str, limit: Limit) -> None:
    """Count one request against `scope:key`; raise RateLimited once the window is full."""
    now = time.time()
    window = int(now // limit.seconds)
    cache_key = f"rl:{scope}:{key}:{window}"
    # add() is a no-op when the key exists, so concurrent first hits never reset the count.
    cache.add(cache_key, 0, timeout=limit.seconds + 1)
    try:
        used = cache.incr(cache_key)
    except ValueError:  # expired between add() and incr(): start the window again
        cache.set(cache_key, 1, timeout=limit.seconds + 1)
        used = 1
    if used > limit.count:
        retry_after = max(1, math.ceil((window + 1) * limit.seconds - now))
        raise RateLimited(scope, retry_after)


def check(*pairs: tuple[str, str, str]) -> None:
    """Apply several limits, given as (scope, key, spec) with spec like "20/60"."""
    if not settings.RATE_LIMITS_ENABLED:
        return
    for scope, key, spec in pairs:
        hit(scope, key, Limit.parse(spec))


def client_ip(request) -> str:
    header = settings.CLIENT_IP_HEADER
    if header and request.META.get(header):
        # The proxy appends the address it saw last; that is the one it vouches for.
        return request.META[header].split(",")[-1].strip()
    return request.META.get("REMOTE_ADDR", "") or "unknown"
