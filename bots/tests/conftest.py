"""Fixtures for the bots tests (shared helpers live in chat_helpers.py)."""

from bots.tests.chat_helpers import asgi_server  # noqa: F401  (fixture: uvicorn on the test database)
