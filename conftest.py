"""Shared fixtures. Tests run against the real PostgreSQL (pgvector) and Redis that
`make test` starts (scripts/services.py); each run has its own database and Redis prefix."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import quote

import pytest

ROOT = Path(__file__).resolve().parent


@pytest.fixture
def make_user(db):
    from accounts.services import account_signup

    def make(email: str, workspace_name: str = "Acme Inc"):
        return account_signup(email=email, password="correct-horse-battery-9", workspace_name=workspace_name)

    return make


@pytest.fixture
def user(make_user):
    return make_user("owner@example.com", "Acme Inc")


@pytest.fixture
def other_user(make_user):
    return make_user("rival@example.com", "Rival Ltd")


@pytest.fixture
def workspace(user):
    return user.workspaces.get()


@pytest.fixture
def bot(workspace):
    from bots.services import bot_create

    return bot_create(workspace=workspace, name="Acme Help", slug="acme")


@pytest.fixture
def other_bot(other_user):
    from bots.services import bot_create

    return bot_create(workspace=other_user.workspaces.get(), name="Rival Help", slug="rival")


@pytest.fixture
def owner_client(client, user):
    client.force_login(user)
    return client


@pytest.fixture
def other_client(client, other_user):
    client.force_login(other_user)
    return client


def database_url_for_tests() -> str:
    """DATABASE_URL of the test database pytest-django created, for child processes."""
    from django.db import connection

    s = connection.settings_dict
    host = quote(s["HOST"] or "localhost", safe="")
    port = f":{s['PORT']}" if s.get("PORT") else ""
    auth = s["USER"] + (f":{quote(s['PASSWORD'], safe='')}" if s.get("PASSWORD") else "")
    return f"postgres://{auth}@{host}{port}/{s['NAME']}"


@pytest.fixture
def celery_worker_process(transactional_db, tmp_path):
    """A real Celery worker in its own process, consuming every queue, on the test database.

    Yields the Popen; the test must use transactional_db so the worker sees committed rows.
    """
    from django.conf import settings

    env = {
        **os.environ,
        "DATABASE_URL": database_url_for_tests(),
        "ASKHANDLE_REDIS_PREFIX": settings.REDIS_PREFIX,
        "ASKHANDLE_MODEL_CACHE": str(settings.LOCAL_MODEL_CACHE),
        "PYTHONUNBUFFERED": "1",
    }
    env.pop("PYTEST_VERSION", None)
    log = tmp_path / "worker.log"
    proc = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "askhandle", "worker", "-Q", "default,ingest,training",
         "-c", "1", "--pool", "prefork", "--loglevel", "INFO", "-n", f"test{os.getpid()}@%h"],
        cwd=ROOT, env=env, stdout=log.open("w"), stderr=subprocess.STDOUT, start_new_session=True,
    )
    deadline = time.monotonic() + 60
    while "ready." not in log.read_text():
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            pytest.fail(f"Celery worker did not start:\n{log.read_text()[-3000:]}")
        time.sleep(0.2)
    proc.log_path = log
    yield proc
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()


@pytest.fixture
def openai_server(settings):
    """A local server speaking the OpenAI API; settings point the openai provider at it."""
    from providers import get_provider
    from providers.tests.openai_server import API_KEY, OpenAIStubServer

    with OpenAIStubServer() as server:
        settings.OPENAI_BASE_URL = server.base_url
        settings.OPENAI_API_KEY = API_KEY
        settings.OPENAI_CHAT_MODEL = "gpt-4o-mini"
        settings.OPENAI_EMBEDDING_MODEL = "text-embedding-3-small"
        get_provider.cache_clear()
        yield server
    get_provider.cache_clear()
