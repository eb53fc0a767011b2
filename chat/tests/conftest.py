import pytest
import redis
from django.conf import settings
from django.core.cache import cache


@pytest.fixture(autouse=True)
def fresh_rate_limits():
    """Each test starts with no rate-limit counts: every test client calls from 127.0.0.1, so
    counts from earlier tests in the same minute (failed API keys above all, 5 a minute per
    address) would otherwise decide later tests' answers."""
    raw = redis.Redis.from_url(settings.REDIS_URL)
    try:
        keys = list(raw.scan_iter(cache.make_key("rl:*"), count=1000))
        if keys:
            raw.delete(*keys)
    except redis.RedisError:
        pass  # tests of a Redis outage: the limits count in the process then
    finally:
        raw.close()
