"""The answer pipeline: one question in, one answer out. What the customer reads is decided here.

    (1) the best FAQ entry matches confidently (score >= direct threshold, and no other entry
        does) -> its curated answer, word for word, with up to three related questions
                                                                                  path "direct"
    (2) something relevant was found (score >= answer threshold), and
        (a) the bot may generate (bot.may_generate: an OpenAI-compatible chat model, or the owner
            switched it on) -> the chat model writes from the top chunks; every sentence passes
            chat.answering.grounding before it is shown; a first sentence that fails falls back to (b)
                                                                                   path "generated"
        (b) otherwise, the best entry is an FAQ entry -> its curated answer, framed as a best
            match ("Here is what I found about ..."), with up to three related questions
                                                                                   path "best_match"
        (c) otherwise (a document passage) -> its most relevant sentences, quoted and cited
                                                                                   path "extractive"
    (3) nothing relevant -> the bot's fallback message (unanswered)                path "fallback"

Why (2b)/(2c) by default: with its best three chunks as context, the local SmolLM2-135M got 22
of 22 answers on the demo shop wrong or invented (docs/decisions.md), while retrieval had picked
the right entry for 34 of 35 questions. A curated answer the owner wrote is what a customer
should read; the framing says it is a best match, not a certainty.

Thresholds are per bot (Bot.direct_threshold / answer_threshold), cosine similarities from
knowledge.selectors.search (for an FAQ entry, to the centroid of its phrasings).

`answer_stream()` yields ("token", str) events while the answer is produced and ends with one
("done", Answer). `answer()` runs it to the end. Neither writes to the database: callers (chat
views, API, test page) record Messages.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Iterator
from concurrent.futures import Future
from dataclasses import dataclass, field

import numpy as np
from django.utils import translation
from django.utils.translation import gettext, gettext_noop

import providers
from bots import languages
from bots.models import Bot
from knowledge import selectors
from providers import Overloaded
from training.chat_tuning import deployed_chat_model
from training.datasets import hit_context, prompt_messages

from ..models import Message
from . import grounding, thread_pool
from .thread_pool import release_connection

log = logging.getLogger(__name__)

GENERATION_MAX_TOKENS = 200
RETRIEVE_LIMIT = 5  # candidates shown on the test page
CONTEXT_CHUNKS = 3  # the small local model loses track of longer contexts
RELATED_MAX = 3
QUOTE_SENTENCES = 3  # at most this many sentences of a passage are quoted
# A passage's sentence is quoted when its similarity to the question is within this much of the
# best sentence's: the answer keeps the sentences that are about the question, not the whole
# chunk (measured on the demo shop's policy document, chat/tests/test_answer.py).
QUOTE_MARGIN = 0.15
# The framing the customer reads around the owner's words, in the bot's language (locale/).
BEST_MATCH_INTRO = gettext_noop("Here is what I found about “%(title)s”:")
QUOTE_INTRO = gettext_noop("From “%(title)s”:")


def in_bot_language(bot: Bot, message: str, **values) -> str:
    """`message` (marked with gettext_noop) translated into the bot's language and filled in.
    The answer is made on pool threads and generators, so the language is set here, per string,
    not around the stream (an override held across a yield would leak into the caller)."""
    with translation.override(bot.language or "en"):
        return gettext(message) % values


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
    path: str  # Message.Path value
    score: float | None = None
    sources: list[Source] = field(default_factory=list)
    retrieved: list[dict] = field(default_factory=list)  # every candidate, with scores (test page)
    latency_ms: int = 0
    timings: dict = field(default_factory=dict)
    related: list[str] = field(default_factory=list)  # questions the customer can ask next
    grounding: dict | None = None  # chat.answering.grounding.Verdict.as_dict() when the model wrote
    policy: str = ""  # "generate" or "curated": which answer policy applied

    @property
    def answered(self) -> bool:
        return self.path not in (Message.Path.FALLBACK, Message.Path.ERROR)


def cite(hit) -> Source:
    """A source as the customer sees it: an FAQ entry by its own question (not the phrasing
    that happened to match), a passage by its title."""
    return Source(
        hit.question or hit.title,
        hit.url,
        hit.chunk_id,
        hit.faq_id,
        round(hit.score, 4),
        hit.text[:300],
    )


class _Run:
    """One answer being made: its clock, timings and retrieved candidates."""

    def __init__(self, bot: Bot) -> None:
        self.bot = bot
        self.started = time.perf_counter()
        self.timings: dict[str, int] = {}
        self.retrieved: list[dict] = []
        self.policy = "generate" if bot.may_generate else "curated"

    def since(self, t: float) -> int:
        return int((time.perf_counter() - t) * 1000)

    def done(self, text: str, path: str, sources=(), score=None, **extra) -> tuple[str, Answer]:
        answer = Answer(
            text=text,
            path=path,
            score=score,
            sources=list(sources),
            retrieved=self.retrieved,
            latency_ms=self.since(self.started),
            timings=self.timings,
            policy=self.policy,
            **extra,
        )
        return ("done", answer)

    def fallback(self, path: str = Message.Path.FALLBACK, score=None) -> Iterator:
        yield ("token", self.bot.fallback_message)
        yield self.done(self.bot.fallback_message, path, score=score)


def answer_stream(
    bot: Bot, question: str, *, history=(), generate: bool = True, vector=None
) -> Iterator[tuple[str, object]]:
    """Yield ("token", str) events, then one ("done", Answer).

    generate=False decides without calling the chat model: a question the model would write
    ends with path "generated", empty text and the sources it would cite. `vector` is the
    question's embedding when the caller already computed it (batch benchmarks).
    A provider failure ends with the fallback message and path "error"; nothing is raised.
    """
    run = _Run(bot)
    try:
        hits = _retrieve(run, question, vector)
    except Exception:  # a provider or model failure must not become a 500 in a chat
        log.exception("Retrieval failed for bot %s", bot.pk)
        yield from run.fallback(Message.Path.ERROR)
        return
    best = hits[0] if hits else None
    # Word for word only when one entry stands out: when another FAQ entry clears the direct
    # threshold too, the bot cannot tell which one the customer means ("are you open on sundays?"
    # scored 0.697 for "Are you open on public holidays?" and 0.695 for "What are your opening
    # hours?" on the demo shop), so the best one is framed as a best match, naming the question it
    # answers, with the other one first among the related questions.
    confident = bool(
        best
        and best.faq_id
        and best.score >= bot.direct_threshold
        and not any(h.faq_id and h.score >= bot.direct_threshold for h in hits[1:])
    )
    # Fine-tuned and both modes with a deployed tuned model (training.chat_tuning): it writes.
    # In both mode a confident FAQ match still gets the owner's answer word for word: retrieval
    # found it, and the curated text is what the tuned model was taught to say anyway.
    tuned = deployed_chat_model(bot) if generate else None
    if tuned and not (confident and bot.mode == Bot.Mode.BOTH):
        relevant = [h for h in hits[:CONTEXT_CHUNKS] if h.score >= bot.answer_threshold]
        if not relevant:
            # Nothing the bot knows is close: decline, as in every mode (the owner's caution).
            # A small tuned model asked anyway answers unrelated questions with an FAQ answer,
            # and that passes the check against the top passages it copied.
            yield from run.fallback(score=best.score if best else None)
        else:
            yield from _generated(run, question, hits, relevant, history, tuned=tuned)
        return
    if confident:
        yield ("token", best.answer)
        # A confident match can still be the wrong entry: the other entries that clear the
        # answer threshold are offered as one click away.
        related = related_questions(hits, best, bot.answer_threshold)
        yield run.done(best.answer, Message.Path.DIRECT, [cite(best)], best.score, related=related)
        return
    relevant = [h for h in hits[:CONTEXT_CHUNKS] if h.score >= bot.answer_threshold]
    if not relevant:
        yield from run.fallback(score=best.score if best else None)
    elif not bot.may_generate:
        yield from _curated(run, question, hits, relevant)
    elif not generate:
        yield run.done("", Message.Path.GENERATED, [cite(h) for h in relevant], relevant[0].score)
    else:
        yield from _generated(run, question, hits, relevant, history)


def _retrieve(run: _Run, question: str, vector) -> list:
    if vector is None:
        t = time.perf_counter()
        vector = selectors.embed_query(run.bot, question)
        run.timings["embed_ms"] = run.since(t)
    t = time.perf_counter()
    hits = selectors.search(bot=run.bot, query=question, limit=RETRIEVE_LIMIT, vector=vector)
    run.timings["search_ms"] = run.since(t)
    run.retrieved.extend(
        {
            "chunk_id": h.chunk_id,
            "faq_id": h.faq_id,
            "title": h.title,
            "source": h.source_name,
            "score": round(h.score, 4),
            "phrasing_score": round(h.phrasing_score, 4),
            "vector_rank": h.vector_rank,
            "text_rank": h.text_rank,
            "snippet": h.text[:300],
        }
        for h in hits
    )
    return hits


# --- Curated answers: the owner's own words ------------------------------------------------------


def _curated(run: _Run, question: str, hits: list, relevant: list, grounding=None) -> Iterator:
    """The best match's curated answer, or the best passage's most relevant sentences."""
    top = relevant[0]
    if top.faq_id:
        intro = in_bot_language(run.bot, BEST_MATCH_INTRO, title=top.question or top.title)
        text = f"{intro}\n\n{top.answer}"
        path = Message.Path.BEST_MATCH
    else:
        t = time.perf_counter()
        intro = in_bot_language(run.bot, QUOTE_INTRO, title=top.title)
        text = f"{intro} {quote(question, top.text, run.bot.language)}"
        run.timings["quote_ms"] = run.since(t)
        path = Message.Path.EXTRACTIVE
    yield ("token", text)
    yield run.done(
        text,
        path,
        [cite(top)],
        top.score,
        related=related_questions(hits, top, run.bot.answer_threshold),
        grounding=grounding,
    )


def related_questions(hits: list, shown, threshold: float) -> list[str]:
    """Up to RELATED_MAX other FAQ questions among the relevant hits, for one-click asking."""
    out: list[str] = []
    for hit in hits:
        question = hit.question or hit.title
        if hit is shown or not hit.faq_id or hit.score < threshold or question in out:
            continue
        out.append(question)
        if len(out) == RELATED_MAX:
            break
    return out


def quote(question: str, passage: str, language: str = "en") -> str:
    """The passage's sentences that answer the question best (at most QUOTE_SENTENCES, in the
    passage's order), embedded with the local model of the bot's language (bots.languages)."""
    sentences = grounding.split_sentences(passage)
    if len(sentences) <= 1:
        return passage.strip()
    local = providers.get_provider("local")
    model = languages.local_embedding_model(language)
    asked = np.asarray(local.embed([question], model=model, kind="query"), dtype=np.float32)
    said = np.asarray(local.embed(sentences, model=model, kind="passage"), dtype=np.float32)
    scores = said @ asked[0]
    ranked = np.argsort(-scores)[:QUOTE_SENTENCES]
    keep = sorted(i for i in ranked if scores[i] >= scores[ranked[0]] - QUOTE_MARGIN)
    return " ".join(sentences[i] for i in keep)


# --- Written answers: the chat model, checked sentence by sentence -------------------------------


def _generated(
    run: _Run, question: str, hits: list, relevant: list, history, tuned=None
) -> Iterator:
    """The chat model's answer, streamed sentence by sentence as each passes the check.

    tuned=(provider, model): the bot's deployed fine-tuned model writes, prompted as it was
    trained (training.datasets.prompt_messages): with the relevant chunks in both mode, with the
    question alone in fine-tuned mode. Its sentences are checked against the retrieved chunks
    all the same (the top ones when none is relevant: then a failing answer gets the fallback)."""
    if tuned:
        context = hit_context(relevant) if run.bot.mode == Bot.Mode.BOTH else None
        messages = prompt_messages(run.bot, question, context=context, history=history)
        provider, model = providers.get_provider(tuned[0]), tuned[1]
        run.policy = f"tuned ({run.bot.mode})"
    else:
        context = [(hit.title, hit.text) for hit in relevant]
        messages = prompt_messages(run.bot, question, context=context, history=history, cite=True)
        provider, model = providers.for_bot(run.bot), run.bot.chat_model or None
    checked = relevant or hits[:CONTEXT_CHUNKS]
    score = checked[0].score if checked else None
    written = _Written(run.bot.fallback_message, [h.text for h in checked], run.bot.language)
    release_connection()  # the model may write for seconds; it needs no database
    t = time.perf_counter()
    stream = provider.chat_stream(messages, model=model, max_tokens=GENERATION_MAX_TOKENS)
    try:
        for piece in stream:
            yield from written.feed(piece)
            if written.stopped:
                break
        else:
            yield from written.end()
    except Exception:
        log.exception("Generation failed for bot %s", run.bot.pk)
        run.timings["generate_ms"] = run.since(t)
        if not written.sent:
            yield from run.fallback(Message.Path.ERROR, score)
            return
    finally:
        stream.close()
    run.timings["generate_ms"] = run.since(t)
    verdict = written.checker.verdict.as_dict()
    if written.declined:  # the model said the fallback message, as the prompt asks
        yield from run.fallback(score=score)
    elif not written.sent and relevant:  # nothing it wrote passed: the owner's words instead
        yield from _curated(run, question, hits, relevant, grounding=verdict)
    elif not written.sent:
        yield from run.fallback(score=score)
    else:  # only checked sentences were sent; a later one that failed ended the answer there
        yield run.done(
            written.text,
            Message.Path.GENERATED,
            [cite(h) for h in checked],
            score,
            grounding=verdict,
        )


class _Written:
    """The sentences a model writes: each is checked (chat.answering.grounding) before it is sent. Text
    that is still the start of the bot's fallback message is held back until it is clear
    whether the model declines (the prompt asks it to reply exactly that)."""

    def __init__(self, fallback: str, context: list[str], language: str | None = None) -> None:
        self.fallback = fallback.strip()
        self.checker = grounding.SentenceChecker(context, language)  # in the bot's language
        self.buffer = grounding.SentenceBuffer()
        self.kept: list[str] = []  # passed (or the fallback's own words)
        self.sent = 0  # how many of `kept` were sent
        self.stopped = False

    @property
    def text(self) -> str:
        return " ".join(self.kept).strip()

    @property
    def declined(self) -> bool:
        return self.text == self.fallback

    def _declining(self) -> bool:
        return self.fallback.startswith(self.text)

    def _keep(self, sentence: str) -> bool:
        if self.fallback.startswith(" ".join([*self.kept, sentence]).strip()):
            self.kept.append(sentence)  # the bot's own words so far, not a claim
            return True
        if self.checker.check(sentence):
            self.kept.append(sentence)
            return True
        self.stopped = True
        return False

    def _send(self, *, force: bool = False) -> Iterator[tuple[str, str]]:
        if self._declining() and not force:
            return
        for sentence in self.kept[self.sent :]:
            yield ("token", (" " if self.sent else "") + sentence)
            self.sent += 1

    def feed(self, piece: str) -> Iterator[tuple[str, str]]:
        for sentence in self.buffer.feed(piece):
            if not self._keep(sentence):
                break
        yield from self._send()

    def end(self) -> Iterator[tuple[str, str]]:
        for sentence in self.buffer.rest():
            self._keep(sentence)
        if not self.declined:
            yield from self._send(force=True)


def answer(bot: Bot, question: str, *, history=(), generate: bool = True, vector=None) -> Answer:
    for kind, value in answer_stream(
        bot, question, history=history, generate=generate, vector=vector
    ):
        if kind == "done":
            return value  # type: ignore[return-value]
    raise RuntimeError("answer_stream ended without an answer")


# --- The same, driven from an async view ---------------------------------------------------------
# answer_stream is a synchronous generator (database reads, model calls); each of its steps runs
# on the bounded answer pool (thread_pool), so the event loop stays free while the next token is
# produced and a slow answer holds one pool thread, never a thread other requests need. The
# question's embedding is started before and awaited on the loop (start/finish_query_vector).


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
