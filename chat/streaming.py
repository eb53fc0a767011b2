"""The one loop that streams an answer to an async view (the public page's SSE and /v1's chunks).

chat.answer.answer_stream is a synchronous generator (database reads, model calls); each step
runs on the bounded answer pool (chat.workers), so the event loop stays free while the next token
is produced and a slow answer holds one pool thread, never a thread other requests need.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator

from providers import Overloaded

from . import workers
from .answer import answer_stream

log = logging.getLogger(__name__)


def query_vector(bot, question: str):
    """The question's embedding, batched with other questions (knowledge.selectors.embed_query),
    computed before an answer starts so a full queue can still be answered with a 503.
    Overloaded propagates; any other failure gives None and answer_stream retries the embedding
    and ends with its usual error fallback."""
    from knowledge import selectors

    try:
        return selectors.embed_query(bot, question)
    except Overloaded:
        raise
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
        while (event := await workers.run(next, stream, None)) is not None:
            yield event
            if event[0] == "done":
                return
        raise RuntimeError("answer stream ended without an answer")
    finally:
        await workers.run(stream.close)
