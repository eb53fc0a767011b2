"""Shared by the public chat, widget, rate-limit and API tests: FAQ knowledge embedded with the
real local model, and a real uvicorn server (ASGI) on the test database."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from django.db.models import F

ROOT = Path(__file__).resolve().parents[2]


def add_faq(bot, question: str, answer: str, url: str = ""):
    """One READY FAQ entry whose single chunk is the question's real embedding, so asking the
    same question is a direct FAQ answer (similarity 1.0)."""
    import providers
    from knowledge.models import Chunk, FaqEntry, Source

    source, _ = Source.objects.get_or_create(
        bot=bot, kind=Source.Kind.MANUAL, name="FAQ", defaults={"status": Source.Status.READY}
    )
    entry = FaqEntry.objects.create(
        bot=bot, source=source, question=question, answer=answer, url=url
    )
    vector = providers.for_bot(bot).embed([question])[0]
    Chunk.objects.create(
        bot=bot,
        source=source,
        faq=entry,
        title=question,
        text=question,
        embedding=vector,
        embedding_model=providers.embedding_model_for_bot(bot),
    )
    # Keep the source as ingestion leaves it: search reads sources that have chunks.
    Source.objects.filter(pk=source.pk).update(chunk_count=F("chunk_count") + 1)
    return entry


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_uvicorn(
    env_extra: dict, log_path: Path, timeout: float = 60, extra_args: tuple = ()
) -> tuple[subprocess.Popen, str]:
    port = free_port()
    env = {**os.environ, "PYTHONUNBUFFERED": "1", **env_extra}
    env.pop("PYTEST_VERSION", None)  # the child is a server, not a test run
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "uvicorn",
            "askhandle.asgi:application",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--log-level",
            "warning",
            "--no-access-log",
            *extra_args,
        ],
        cwd=ROOT,
        env=env,
        stdout=log_path.open("w"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + timeout
    while True:
        try:
            if httpx.get(base + "/healthz", timeout=2).status_code == 200:
                return proc, base
        except httpx.HTTPError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            raise RuntimeError(f"uvicorn did not start:\n{log_path.read_text()[-3000:]}")
        time.sleep(0.2)


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()


@pytest.fixture
def asgi_server(transactional_db, tmp_path):
    """uvicorn serving askhandle.asgi:application on a free port against the test database.
    Yields the base URL; tests must commit their rows (transactional_db) for the server to see them."""
    from django.conf import settings

    from conftest import database_url_for_tests

    proc, base = start_uvicorn(
        {
            "DATABASE_URL": database_url_for_tests(),
            "ASKHANDLE_REDIS_PREFIX": settings.REDIS_PREFIX,
            "ASKHANDLE_MODEL_CACHE": str(settings.LOCAL_MODEL_CACHE),
        },
        tmp_path / "uvicorn.log",
    )
    base_url = base
    yield base_url
    stop(proc)


def add_document_chunk(bot, text: str, title: str = "Shipping policy", url: str = ""):
    """A READY document chunk (not an FAQ): a close match is answered by generation, not verbatim."""
    import providers
    from knowledge.models import Chunk, Source

    source = Source.objects.create(
        bot=bot, kind=Source.Kind.TEXT, name=title, url=url, status=Source.Status.READY,
        chunk_count=1,
    )
    vector = providers.for_bot(bot).embed([text], model=bot.embedding_model or None)[0]
    return Chunk.objects.create(
        bot=bot,
        source=source,
        title=title,
        text=text,
        embedding=vector,
        embedding_model=providers.embedding_model_for_bot(bot),
    )
