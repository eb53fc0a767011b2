"""The one loop that streams an answer to an async view (the public page's SSE and /v1's chunks).

chat.answering.pipeline.answer_stream is a synchronous generator (database reads, model calls); each step
runs on the bounded answer pool (chat.answering.thread_pool), so the event loop stays free while the next token
is produced and a slow answer holds one pool thread, never a thread other requests need.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from concurrent.futures import Future

from knowledge import selectors
from providers import Overloaded

from . import thread_pool
from .pipeline import answer_stream

log = logging.getLogger(__name__)


def start_query_vector(bot, question: str):
    """Start the question's embedding before an answer starts, so a full queue can still be
    answered with a 503 (knowledge.selectors.embed_query_start): the vector when this process
    remembers the question, else a Future for `finish_query_vector`. Overloaded propagates; any
    other failure gives None, and answer_stream retries the embedding and ends with its usual
    error fallback."""
    try:
        return selectors.embed_query_start(bot, question)
    except Overloaded:
        raise
    except Exception:
        log.warning("Embedding the question for bot %s failed", bot.pk, exc_info=True)
        return None


async def finish_query_vector(bot, pending):
    """The vector `start_query_vector` gave, awaited on the event loop when it is still in the
    batch: the question holds no answer thread while it waits, so a web worker batches as many
    waiting questions as the batcher takes, not only as many as it has answer threads. None
    when the model failed or took longer than selectors.EMBED_WAIT_SECONDS."""
    if not isinstance(pending, Future):
        return pending
    try:
        return await asyncio.wait_for(asyncio.wrap_future(pending), selectors.EMBED_WAIT_SECONDS)
    except Exception:
        log.warning("Embedding the question for bot %s failed", bot.pk, exc_info=True)
        return None


async def answer_events(
    bot, question: str, *, history=(), vector=None
) -> AsyncIterator[tuple[str, object]]:
    """Yield answer_stream's ("token", str) events, then its ("done", Answer), and stop.

    The synchronous stream is closed however this ends: done, an error, or the client leaving
    (use `contextlib.aclosing` so that happens at once). A stream that ends without "done"
    raises RuntimeError.
    """
    stream = answer_stream(bot, question, history=history, vector=vector)
    try:
        while (event := await thread_pool.run(next, stream, None)) is not None:
            yield event
            if event[0] == "done":
                return
        raise RuntimeError("answer stream ended without an answer")
    finally:
        await thread_pool.run(stream.close)
