"""Shared fixtures. Tests run against the real PostgreSQL (pgvector) and Redis that
`make test` starts (scripts/services.py); each run has its own database and Redis prefix."""

from __future__ import annotations

import os
import time
from pathlib import Path
from urllib.parse import quote

import pytest

ROOT = Path(__file__).resolve().parent


def pytest_sessionfinish(session, exitstatus):
    """Remove this run's media folder (settings.MEDIA_ROOT is per test process)."""
    import shutil

    from django.conf import settings

    if settings.configured and f"{os.sep}test-media{os.sep}" in str(settings.MEDIA_ROOT):
        shutil.rmtree(settings.MEDIA_ROOT, ignore_errors=True)


@pytest.fixture
def make_user(db):
    from accounts.services import account_signup

    def make(email: str, workspace_name: str = "Acme Inc"):
        return account_signup(
            email=email, password="correct-horse-battery-9", workspace_name=workspace_name
        )

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


def child_env() -> dict:
    """What a server or worker subprocess needs to share this test run's database and Redis."""
    from django.conf import settings

    env = {
        **os.environ,
        "DATABASE_URL": database_url_for_tests(),
        "ASKHANDLE_REDIS_PREFIX": settings.REDIS_PREFIX,
        "ASKHANDLE_MODEL_CACHE": str(settings.LOCAL_MODEL_CACHE),
        "DJANGO_MEDIA_ROOT": str(settings.MEDIA_ROOT),
        # Off in tests unless a test turns it on (it trains a model after every FAQ ingest).
        "ASKHANDLE_RETRIEVAL_TUNING_AUTO": "1" if settings.RETRIEVAL_TUNING_AUTO else "0",
        "PYTHONUNBUFFERED": "1",
    }
    if settings.OPENAI_BASE_URL:  # a test's local OpenAI-compatible server (openai_server)
        env.update(OPENAI_BASE_URL=settings.OPENAI_BASE_URL, OPENAI_API_KEY=settings.OPENAI_API_KEY)
    env.pop("PYTEST_VERSION", None)
    env.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
    return env


def wait_for(predicate, timeout: float, what: str, *logs: Path):
    """Polls `predicate` every 0.1 s until it returns something true, and returns that; fails the
    test after `timeout` seconds, naming `what` and showing the end of each log file."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if value := predicate():
            return value
        time.sleep(0.1)
    tails = "\n".join(f"--- {log} ---\n{log.read_text()[-3000:]}" for log in logs)
    pytest.fail(f"Timed out after {timeout:.0f} s waiting for {what}\n{tails}")


def terminate_other_connections() -> int:
    """Every backend of this test database but this test's own: what a PostgreSQL restart does to
    the clients (the shared server itself is not restarted). Returns how many were cut."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
            " WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )
        return cursor.fetchone()[0]


@pytest.fixture
def asgi_server(transactional_db, tmp_path):
    """uvicorn serving askhandle.asgi:application (as in production) on a free port against the
    test database. Yields the base URL; tests commit their rows (transactional_db) for it to see."""
    from askhandle.devtools import start_uvicorn, stop_process

    log = tmp_path / "uvicorn.log"
    proc, base = start_uvicorn(child_env(), log)
    yield base
    stop_process(proc)
    print(f"--- uvicorn log (shown when the test fails) ---\n{log.read_text()[-4000:]}")


@pytest.fixture
def celery_worker_process(transactional_db, tmp_path):
    """A real Celery worker in its own process, consuming every queue, on the test database.

    Yields the Popen (its output in `.log_path`); the test must use transactional_db so the
    worker sees committed rows.
    """
    from askhandle.devtools import start_celery_worker, stop_process

    proc = start_celery_worker(
        child_env(), tmp_path / "worker.log", name=f"test{os.getpid()}@%h", timeout=60
    )
    yield proc
    stop_process(proc)


@pytest.fixture
def openai_server(settings):
    """A local server speaking the OpenAI API; settings point the openai provider at it."""
    from knowledge.selectors import query_vectors
    from providers import get_provider
    from providers.tests.openai_server import API_KEY, OpenAIStubServer

    with OpenAIStubServer() as server:
        settings.OPENAI_BASE_URL = server.base_url
        settings.OPENAI_API_KEY = API_KEY
        settings.OPENAI_CHAT_MODEL = "gpt-4o-mini"
        settings.OPENAI_EMBEDDING_MODEL = "text-embedding-3-small"
        get_provider.cache_clear()
        query_vectors.clear()
        yield server
    get_provider.cache_clear()
    query_vectors.clear()


# --- Browser tests: Debian's chromium driven by Playwright (sync API) ---------------------------
# `playwright install` cannot download browsers here; scripts/install-system-deps.sh installs
# Debian's chromium.
CHROMIUM = os.environ.get("ASKHANDLE_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
]
SCREENS = Path(os.environ.get("ASKHANDLE_SCREENS", "/tmp/screens"))


@pytest.fixture
def browser(monkeypatch):
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: run `make system-deps` (apt-get install chromium).")
    from playwright.sync_api import sync_playwright

    # Playwright's sync API keeps an event loop on the test's thread; Django would then refuse
    # ORM calls from the test body ("async context"). The test code stays plain sequential code.
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()
        # While Playwright's loop runs, Django keys connections by that context: the test's ORM
        # calls got their own connection, which only this context can close (else the test
        # database cannot be dropped: "being accessed by other users").
        from django.db import connections

        connections.close_all()


@pytest.fixture
def screenshot():
    """screenshot(page, "name") saves /tmp/screens/name.png (full page)."""
    SCREENS.mkdir(parents=True, exist_ok=True)

    def take(page, name: str) -> Path:
        path = SCREENS / f"{name}.png"
        page.screenshot(path=str(path), full_page=True)
        return path

    return take
