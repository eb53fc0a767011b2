"""Static files are served by WhiteNoise without taking every request off the event loop."""

import logging

import pytest
from asgiref.sync import async_to_sync
from django.conf import settings
from django.core.handlers.asgi import ASGIHandler
from django.test import AsyncClient, override_settings

from askhandle.static_files import StaticFilesMiddleware

pytestmark = pytest.mark.django_db(transaction=True)


def test_the_asgi_middleware_chain_is_async_end_to_end(caplog):
    """Django logs (with DEBUG on) each middleware it had to wrap in a thread adapter; WhiteNoise's
    own middleware was one, for every request."""
    assert "askhandle.static_files.StaticFilesMiddleware" in settings.MIDDLEWARE
    assert not any("whitenoise" in path for path in settings.MIDDLEWARE)
    with override_settings(DEBUG=True), caplog.at_level(logging.DEBUG, logger="django.request"):
        ASGIHandler()
    adapted = [r.getMessage() for r in caplog.records if "adapted for" in r.getMessage()]
    assert adapted == []


@override_settings(DEBUG=True, WHITENOISE_USE_FINDERS=True, WHITENOISE_AUTOREFRESH=True)
def test_static_files_and_pages_are_served_through_the_async_chain():
    async_to_sync(_static_and_page)()


async def _static_and_page():
    client = AsyncClient()  # Django's ASGI request path, middleware loaded as async
    script = await client.get("/static/js/chat.js")
    assert script.status_code == 200
    body = b"".join([chunk async for chunk in script]) if script.streaming else script.content
    assert b"function" in body and script["Content-Type"].startswith("text/javascript")
    missing = await client.get("/static/js/no-such-file.js")
    assert missing.status_code == 404
    page = await client.get("/healthz")
    assert page.status_code == 200


def test_the_middleware_still_works_in_a_sync_chain(client, rf):
    """The test client and `manage.py runserver` build a sync chain: no adapter there either."""
    middleware = StaticFilesMiddleware(lambda request: "passed on")
    assert middleware(rf.get("/not-static/")) == "passed on"
    assert client.get("/healthz").status_code == 200
