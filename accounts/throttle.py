"""Failed-login throttle, counted in Redis (under the cache's key prefix) so every web process
shares it: by account and by client IP, for the dashboard and the admin login alike.

A limit is "failures/seconds" (settings). The first failure opens a window of that many seconds
(one key with that expiry); once the window holds the maximum, every attempt for that account
(or from that IP) is refused without checking the password until the key expires, and the owner
is told how long that is. A successful login clears the account's count, never the IP's (an
attacker could otherwise log into an account of their own to reset it).

Redis down: the throttle FAILS OPEN (logins are checked as if no failure had been counted, with
a warning in the log). Failing closed would lock every owner out of the dashboard, and staff out
of the admin they need during the outage, because of a cache fault nobody outside can cause on
purpose; meanwhile each guess still costs a full password hash (PBKDF2, hundreds of milliseconds)
and the outage is short and visible. Connections time out after a second, so a Redis that hangs
slows a login down by that much, no more.
"""

from __future__ import annotations

import hashlib
import logging
import math
from dataclasses import dataclass
from functools import cache

import redis
from django.conf import settings
from django.core.cache import cache as django_cache
from django.utils.translation import ngettext

from askhandle.client_ip import client_ip as trusted_client_ip

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Limit:
    failures: int
    seconds: int

    @classmethod
    def parse(cls, spec: str) -> Limit:
        failures, _, seconds = spec.partition("/")
        return cls(int(failures), int(seconds or 900))


class LoginThrottled(Exception):
    def __init__(self, retry_after: int):
        super().__init__(f"Too many failed log-ins; retry in {retry_after} s.")
        self.retry_after = retry_after


@cache
def _redis(url: str) -> redis.Redis:
    return redis.Redis.from_url(url, socket_connect_timeout=1, socket_timeout=1)


def _client() -> redis.Redis:
    return _redis(settings.REDIS_URL)


def _keys(username: str, ip: str) -> list[tuple[str, Limit]]:
    # Hashed: no e-mail address ends up in a Redis key, and any length fits.
    account = hashlib.sha256(username.strip().lower().encode()).hexdigest()
    return [
        (django_cache.make_key(f"login-fail:account:{account}"), _limit("account")),
        (django_cache.make_key(f"login-fail:ip:{ip}"), _limit("ip")),
    ]


def _limit(scope: str) -> Limit:
    spec = settings.LOGIN_FAILURES_ACCOUNT if scope == "account" else settings.LOGIN_FAILURES_IP
    return Limit.parse(spec)


def check(*, username: str, ip: str) -> None:
    """Raise LoginThrottled if this account or this IP has used up its failures."""
    keys = _keys(username, ip)
    pipe = _client().pipeline(transaction=False)
    for key, _ in keys:
        pipe.get(key)
        pipe.pttl(key)
    try:
        answers = pipe.execute()
    except redis.RedisError:
        log.warning("Login throttle unavailable (Redis); login allowed unthrottled", exc_info=True)
        return
    waits = [
        math.ceil(ttl / 1000)
        for (_key, limit), count, ttl in zip(keys, answers[::2], answers[1::2], strict=True)
        if count is not None and int(count) >= limit.failures and ttl > 0
    ]
    if waits:
        raise LoginThrottled(max(waits))


# One atomic step: the window opens at the first failure and later ones do not extend it. (SET NX
# then INCR could INCR a key that expired in between, leaving a count with no expiry.)
COUNT_FAILURE = """
local count = redis.call('INCR', KEYS[1])
if count == 1 or redis.call('PTTL', KEYS[1]) < 0 then
    redis.call('EXPIRE', KEYS[1], ARGV[1])
end
return count
"""


def failed(*, username: str, ip: str) -> None:
    """Count one failed login against the account and the IP."""
    pipe = _client().pipeline(transaction=False)
    for key, limit in _keys(username, ip):
        pipe.eval(COUNT_FAILURE, 1, key, limit.seconds)
    try:
        pipe.execute()
    except redis.RedisError:
        log.warning("Login throttle unavailable (Redis); failure not counted", exc_info=True)


def succeeded(*, username: str) -> None:
    """Clear the account's failures (not the IP's)."""
    key, _ = _keys(username, "")[0]
    try:
        _client().delete(key)
    except redis.RedisError:
        log.warning("Login throttle unavailable (Redis); count not cleared", exc_info=True)


def client_ip(request) -> str:
    """The client address: a forwarded header counts only from a trusted proxy
    (askhandle.client_ip, the same rule as the chat's per-IP limits)."""
    return trusted_client_ip(request)


def wait_text(seconds: int) -> str:
    if seconds < 60:
        return ngettext("%(n)s second", "%(n)s seconds", seconds) % {"n": seconds}
    minutes = math.ceil(seconds / 60)
    return ngettext("%(n)s minute", "%(n)s minutes", minutes) % {"n": minutes}
