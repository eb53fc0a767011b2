"""The one loop that streams an answer to an async view (the public page's SSE and /v1's chunks).

chat.answer.answer_stream is a synchronous generator (database reads, model calls); each step
runs through sync_to_async so the event loop stays free while the next token is produced.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

from asgiref.sync import sync_to_async

from .answer import answer_stream


async def answer_events(bot, question: str, *, history=()) -> AsyncIterator[tuple[str, object]]:
    """Yield answer_stream's ("token", str) events, then its ("done", Answer), and stop.

    The synchronous stream is closed however this ends: done, an error, or the client leaving
    (use `contextlib.aclosing` so that happens at once). A stream that ends without "done"
    raises RuntimeError.
    """
    stream = answer_stream(bot, question, history=history)
    step = sync_to_async(lambda: next(stream, None))
    try:
        while (event := await step()) is not None:
            yield event
            if event[0] == "done":
                return
        raise RuntimeError("answer stream ended without an answer")
    finally:
        await sync_to_async(stream.close)()
