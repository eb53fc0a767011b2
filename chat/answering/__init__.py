"""Answering a customer's question: the one home of the answer path.

Every caller asks here: the public chat page and widget (chat.public), the OpenAI-compatible API
(chat.api), the owner's Test page (chat.playground) and the Compare evaluation
(chat.evaluation). One question goes

    start_query_vector / finish_query_vector   embed it (batched with other questions),
    answer_stream / answer                      search the bot's knowledge and decide what the
                                                customer reads (pipeline: direct, best match,
                                                quote, written and checked, or fallback),
    answer_events                               the same, streamed to an async view,

with the modules beside this one: `pipeline` (search, the decision, and the loop that drives it
from an async view), `grounding` (the check every written sentence passes) and `thread_pool`
(the bounded pool of threads the synchronous pipeline runs on, and its admission control).
"""

from . import grounding, thread_pool
from .pipeline import (
    Answer,
    Source,
    answer,
    answer_events,
    answer_stream,
    finish_query_vector,
    in_bot_language,
    start_query_vector,
)

__all__ = [
    "Answer",
    "Source",
    "answer",
    "answer_events",
    "answer_stream",
    "finish_query_vector",
    "grounding",
    "in_bot_language",
    "start_query_vector",
    "thread_pool",
]
