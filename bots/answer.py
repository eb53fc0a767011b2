"""The answer pipeline: one question in, one answer out.

    (1) the best FAQ match is confident enough  -> that entry's answer verbatim, no LLM call;
    (2) relevant chunks exist                    -> a grounded answer from the bot's chat model,
                                                    citing them;
    (3) otherwise                                -> the bot's fallback message (unanswered).

`answer_stream()` yields ("token", str) events while the answer is produced and ends with one
("done", Answer). `answer()` runs it to the end. Neither writes to the database: callers
(chat views, API, test page) record Messages.

NOTE: first version (contract for the chat/API code); retrieval is refined in knowledge.selectors.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass, field

import providers
from bots.models import Bot, Message

GENERATION_MAX_TOKENS = 200


@dataclass
class Source:
    title: str
    url: str
    chunk_id: int
    faq_id: int | None
    score: float
    snippet: str

    def as_dict(self) -> dict:
        return self.__dict__.copy()


@dataclass
class Answer:
    text: str
    path: str  # Message.Path value: direct | generated | fallback | error
    score: float | None = None
    sources: list[Source] = field(default_factory=list)
    retrieved: list[dict] = field(default_factory=list)  # every candidate, with scores (test page)
    latency_ms: int = 0
    timings: dict = field(default_factory=dict)

    @property
    def answered(self) -> bool:
        return self.path in (Message.Path.DIRECT, Message.Path.GENERATED)


def build_prompt(bot: Bot, question: str, hits: list, history=()) -> list[providers.ChatMessage]:
    context = "\n\n".join(f"[{i}] {hit.title}\n{hit.text}" for i, hit in enumerate(hits, 1))
    system = (
        f"{bot.instructions}\n\nAnswer the customer's question using only the numbered knowledge "
        "below. Cite the entries you used like [1]. If the knowledge does not contain the answer, "
        f"reply exactly: {bot.fallback_message}\n\nKnowledge:\n{context}"
    )
    messages: list[providers.ChatMessage] = [{"role": "system", "content": system}]
    messages += [{"role": m["role"], "content": m["content"]} for m in history][-6:]
    messages.append({"role": "user", "content": question})
    return messages


def answer_stream(
    bot: Bot, question: str, *, history=(), generate: bool = True
) -> Iterator[tuple[str, object]]:
    from knowledge import selectors

    started = time.perf_counter()
    hits = selectors.search(bot=bot, query=question, limit=5)
    retrieved = [
        {"chunk_id": h.chunk_id, "title": h.title, "score": round(h.score, 4), "faq_id": h.faq_id}
        for h in hits
    ]
    best = hits[0] if hits else None

    def done(text, path, sources=(), score=None):
        return (
            "done",
            Answer(
                text=text,
                path=path,
                score=score,
                sources=list(sources),
                retrieved=retrieved,
                latency_ms=int((time.perf_counter() - started) * 1000),
            ),
        )

    def cite(hit) -> Source:
        return Source(hit.title, hit.url, hit.chunk_id, hit.faq_id, round(hit.score, 4), hit.text[:300])

    if best and best.faq_id and best.score >= bot.direct_threshold:
        yield ("token", best.answer)
        yield done(best.answer, Message.Path.DIRECT, [cite(best)], best.score)
        return
    relevant = [h for h in hits if h.score >= bot.answer_threshold]
    if not relevant or not generate:
        yield ("token", bot.fallback_message)
        yield done(bot.fallback_message, Message.Path.FALLBACK, score=best.score if best else None)
        return
    provider = providers.for_bot(bot)
    parts = []
    for piece in provider.chat_stream(
        build_prompt(bot, question, relevant, history),
        model=bot.chat_model or None,
        max_tokens=GENERATION_MAX_TOKENS,
    ):
        parts.append(piece)
        yield ("token", piece)
    yield done("".join(parts).strip(), Message.Path.GENERATED, [cite(h) for h in relevant], relevant[0].score)


def answer(bot: Bot, question: str, *, history=(), generate: bool = True) -> Answer:
    for kind, value in answer_stream(bot, question, history=history, generate=generate):
        if kind == "done":
            return value  # type: ignore[return-value]
    raise RuntimeError("answer_stream ended without an answer")
