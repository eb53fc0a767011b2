"""Where the public chat and /v1 do their synchronous work: one bounded thread pool per process.

The answer pipeline is synchronous (ORM reads and writes, each step of chat.answering.pipeline.answer_stream,
calls to a local model or a provider over HTTP). Async views hand each piece to this pool with
`await run(fn, ...)`, so the event loop stays free and the number of threads (and of database
connections: one per pool thread at most) stays ANSWER_THREADS whatever the load. Django's own
request threads (the dashboard's sync views) never run an answer.

Admission: a request `admit()`s before its first piece and releases when it ends. Beyond
ANSWER_THREADS + ANSWER_QUEUE requests in progress, `admit()` raises providers.Overloaded and the
views answer 503 with Retry-After: a burst waits in a bounded queue or is told to come back,
never piles up without bound.

Database connections: a pool thread is not a Django request thread, so request_started /
request_finished never clean its connection. Each piece of work starts and ends with Django's own
check (close_if_unusable_or_obsolete: a broken connection, one left outside autocommit or past its
age is closed), with ANSWER_CONN_MAX_AGE as the age: the pool is bounded, so its threads may keep
their connections (at most ANSWER_THREADS per process) even where CONN_MAX_AGE is 0 because
Django's unbounded per-request threads must not. Opening a connection per piece of work was 15 %
of a web worker's samples under load (py-spy, benchmarks/chat_load.py).
"""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

from asgiref.sync import sync_to_async
from django.conf import settings
from django.db import connections
from django.utils.translation import gettext_noop

from providers import Overloaded

_pool: ThreadPoolExecutor | None = None
_lock = threading.Lock()
_in_progress = 0


def pool() -> ThreadPoolExecutor:
    global _pool
    if _pool is None:
        with _lock:
            if _pool is None:
                _pool = ThreadPoolExecutor(
                    max_workers=max(1, settings.ANSWER_THREADS), thread_name_prefix="answer"
                )
    return _pool


def _check_connections() -> None:
    """Django's end-of-request check on this thread's connections, aged by ANSWER_CONN_MAX_AGE."""
    for conn in connections.all(initialized_only=True):
        raw = conn.connection
        if raw is None:
            continue
        if getattr(conn, "_answer_pool_raw", None) is not raw:  # opened since the last check
            conn._answer_pool_raw = raw
            conn._answer_pool_close_at = time.monotonic() + max(0, settings.ANSWER_CONN_MAX_AGE)
        conn.close_at = conn._answer_pool_close_at
        conn.close_if_unusable_or_obsolete()


def release_connection() -> None:
    """Give this thread's database connection back to the web server's pool before slow work
    that needs none (a model writing its answer): held through it, it is one fewer
    for every other customer. A no-op without the pool (settings.DATABASE_POOL) or inside a
    transaction; the next query takes a connection again."""
    if not settings.DATABASE_POOL:
        return
    for conn in connections.all(initialized_only=True):
        if conn.connection is not None and not conn.in_atomic_block:
            conn.close()


def _with_fresh_connection(fn):
    def call(*args, **kwargs):
        _check_connections()
        try:
            return fn(*args, **kwargs)
        finally:
            _check_connections()

    return call


async def run(fn, *args, **kwargs):
    """fn(*args, **kwargs) on a pool thread; the caller's coroutine waits without blocking.

    ANSWER_THREADS = 0 (the in-process test client) runs it on Django's thread-sensitive
    executor instead, so it shares the test's database connection and transaction."""
    if settings.ANSWER_THREADS <= 0:
        return await sync_to_async(fn)(*args, **kwargs)
    return await sync_to_async(_with_fresh_connection(fn), thread_sensitive=False, executor=pool())(
        *args, **kwargs
    )


def in_progress() -> int:
    return _in_progress


class Ticket:
    """One admitted request's place; release() is idempotent and thread-safe."""

    def __init__(self) -> None:
        self._released = False

    def release(self) -> None:
        global _in_progress
        with _lock:
            if not self._released:
                self._released = True
                _in_progress -= 1


def admit() -> Ticket:
    """A place for one request among ANSWER_THREADS + ANSWER_QUEUE; raises Overloaded when
    none is left. Release it when the request ends (a stream: when its iterator finishes, with
    `weakref.finalize` on the iterator for a stream that never started)."""
    global _in_progress
    with _lock:
        if _in_progress >= max(1, settings.ANSWER_THREADS) + max(0, settings.ANSWER_QUEUE):
            raise Overloaded(
                f"{_in_progress} answers are in progress on this server; try again shortly."
            )
        _in_progress += 1
    return Ticket()


# What a customer reads when the queue is full, in the bot's language (chat.public translates it).
OVERLOADED_TEXT = gettext_noop(
    "This assistant is very busy right now. Please try again in a moment."
)
