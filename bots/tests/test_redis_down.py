"""The dashboard's worker-status footer when Redis (the cache and the task queue) is down."""

import socket

import pytest
from django.test import override_settings
from django.urls import reverse

pytestmark = pytest.mark.django_db


def test_worker_status_footer_says_the_queue_is_unreachable(owner_client):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        url = f"redis://127.0.0.1:{s.getsockname()[1]}/0"
    caches = {
        "default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": url}
    }
    with override_settings(CACHES=caches):
        response = owner_client.get(reverse("bots:system_status"))
    assert response.status_code == 200
    assert b"Task queue unreachable" in response.content
