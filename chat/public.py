"""The public chat: the page customers see at /c/<slug>/, its answer stream, ratings and
hand-off. Which bot and conversation a visitor has is chat.visitors'; the widget is chat.widget's.

Nothing here is tenant-scoped: a bot's slug is public. Templates get a `chat` dict of the public
fields only (name, greeting, colour), never the Bot, so owner data cannot reach a page by accident.

Answers stream as server-sent events from an async view (ASGI). The answer pipeline is sync (ORM,
model calls), so each piece runs on the bounded answer pool (chat.answering.thread_pool): the event loop stays
free, a slow answer never holds a thread another request needs, and beyond the pool's queue a
question gets 503 with Retry-After.
"""

from __future__ import annotations

import logging
import weakref
from collections.abc import Sequence
from concurrent.futures import Future
from contextlib import aclosing
from dataclasses import dataclass
from urllib.parse import urlencode

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.http import HttpResponse, JsonResponse, StreamingHttpResponse
from django.middleware.csrf import get_token
from django.shortcuts import get_object_or_404, redirect, render
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import translation
from django.utils.translation import gettext as _
from django.utils.translation import gettext_noop
from django.views.decorators.cache import never_cache
from django.views.decorators.clickjacking import xframe_options_exempt
from django.views.decorators.http import require_GET, require_POST

from bots.models import Bot
from providers import Overloaded

from . import ratelimit, services
from .answering import (
    Answer,
    answer_events,
    answer_stream,
    finish_query_vector,
    start_query_vector,
    thread_pool,
)
from .i18n import chat_strings, in_bot_language
from .markup import render_markdown, stream_json
from .models import Conversation, Message
from .visitors import (
    bot_and_conversation,
    conversation_token,
    public_bot,
    remember_conversation,
    visitor_conversation,
)
from .widget import frame_policy

log = logging.getLogger(__name__)

HISTORY_TURNS = 6
ERROR_TEXT = gettext_noop(
    "Sorry, something went wrong while answering. Please try again in a moment."
)


def public_profile(bot: Bot) -> dict:
    """Everything about a bot that a customer may see on its chat page. (The widget's bubble,
    from the bot's Widget, goes out in widget_config.)"""
    return {
        "slug": bot.slug,
        "name": bot.name,
        "greeting": bot.greeting,
        "colour": bot.primary_colour,
    }


def message_view(message: Message) -> dict:
    sources = [
        {"title": s.get("title") or "Source", "url": s.get("url") or ""}
        for s in (message.sources or [])
    ]
    return {
        "id": message.pk,
        "role": message.role,
        "text": message.text,
        "html": render_markdown(message.text) if message.role == Message.Role.BOT else "",
        "sources": [
            s for s in sources if s["url"].startswith(("http://", "https://")) or not s["url"]
        ],
        "rating": message.rating,
        "path": message.path,
        "related": [q for q in (message.related or []) if isinstance(q, str)][:3],
    }


def _page_context(request, bot: Bot, conversation: Conversation | None, **extra) -> dict:
    messages = list(conversation.messages.all()) if conversation else []
    return {
        "chat": public_profile(bot),
        "conversation_id": conversation_token(conversation) if conversation else "",
        "messages": [message_view(m) for m in messages],
        "embed": (request.GET.get("embed") or request.POST.get("embed")) == "1",
        "max_chars": settings.CHAT_MAX_MESSAGE_CHARS,
        "handoff_done": bool(conversation and conversation.handoff_requested_at),
        "chat_strings": chat_strings(),
        **extra,
    }


def _page(request, bot, conversation, *, status=200, **extra):
    get_token(request)
    response = render(
        request, "chat/page.html", _page_context(request, bot, conversation, **extra), status=status
    )
    return frame_policy(response, bot)


def _wants(request) -> str:
    accept = request.headers.get("Accept", "")
    if "text/event-stream" in accept:
        return "sse"
    if "application/json" in accept:
        return "json"
    return "html"


def _page_url(bot: Bot, request, **query) -> str:
    url = reverse("chat:page", args=[bot.slug])
    if request.POST.get("embed") == "1":
        query["embed"] = "1"
    if query:
        url += "?" + urlencode(query)
    return url


def _error(request, bot, conversation, message: str, status: int, retry_after: int | None = None):
    if _wants(request) == "html":
        response = _page(
            request,
            bot,
            conversation,
            status=status,
            error=message,
            draft=request.POST.get("message", ""),
        )
    else:
        response = JsonResponse({"error": message, "retry_after": retry_after}, status=status)
    if retry_after:
        response["Retry-After"] = str(retry_after)
    return response


def _visitor_limit(request, bot: Bot, conversation: Conversation | None) -> tuple[str, str, str]:
    key = f"{bot.pk}:{ratelimit.client_ip(request)}:{conversation.public_id if conversation else 'new'}"
    return ("visitor", key, settings.RATE_LIMIT_VISITOR)


def limit_visitor(request, bot: Bot, conversation: Conversation | None) -> None:
    """Per visitor (IP + conversation), per IP, per bot. Raises RateLimited."""
    ratelimit.check(
        _visitor_limit(request, bot, conversation),
        ("ip", ratelimit.client_ip(request), settings.RATE_LIMIT_IP),
        ("bot", str(bot.pk), settings.RATE_LIMIT_BOT),
    )


def count_first_message(request, bot: Bot, conversation: Conversation) -> None:
    # The opening message was counted under "new"; count it for the conversation as well so a
    # conversation's allowance is the same whichever message opened it.
    ratelimit.check(_visitor_limit(request, bot, conversation))


def rate_limited_text(exc: ratelimit.RateLimited) -> str:
    if exc.scope == "bot":
        text = _(
            "This assistant is getting a lot of questions. "
            "Please wait %(seconds)s seconds and try again."
        )
    else:
        text = _("You're sending messages quickly. Please wait %(seconds)s seconds and try again.")
    return text % {"seconds": exc.retry_after}


# --- views ---


@require_GET
@never_cache
@xframe_options_exempt  # framing is governed by the CSP frame-ancestors set in frame_policy()
@in_bot_language
def chat_page(request, slug: str):
    bot = public_bot(slug)
    response = _page(
        request,
        bot,
        visitor_conversation(request, bot),
        handoff_sent=request.GET.get("handoff") == "sent",
    )
    if request.is_secure():
        csrf_cookie_for_frames(request, response)
    return response


def csrf_cookie_for_frames(request, response) -> None:
    """Set the CSRF cookie as SameSite=None; Secure: inside the widget's iframe on a customer's
    site the page is a third party, and a Lax cookie would never come back, so every POST
    would fail the CSRF check. The token is still required; only the cookie's reach changes.
    Over plain HTTP (development) browsers refuse SameSite=None, so the default stays."""
    get_token(request)
    response.set_cookie(
        settings.CSRF_COOKIE_NAME,
        request.META["CSRF_COOKIE"],
        max_age=settings.CSRF_COOKIE_AGE,
        domain=settings.CSRF_COOKIE_DOMAIN,
        path=settings.CSRF_COOKIE_PATH,
        secure=True,
        httponly=settings.CSRF_COOKIE_HTTPONLY,
        samesite="None",
    )
    request.META["CSRF_COOKIE_NEEDS_UPDATE"] = False  # keep the middleware from resetting it


class LazyHistory(Sequence):
    """The conversation's last HISTORY_TURNS messages, oldest first, read from the database the
    first time something looks: only a written answer does (chat.answering's prompt), so a direct
    or best-match answer saves the query."""

    def __init__(self, conversation: Conversation) -> None:
        self.conversation = conversation
        self._items: list[dict] | None = None

    def _load(self) -> list[dict]:
        if self._items is None:
            earlier = list(
                self.conversation.messages.order_by("-created_at", "-pk")[:HISTORY_TURNS]
            )
            self._items = [{"role": m.role, "content": m.text} for m in reversed(earlier)]
        return self._items

    def __getitem__(self, index):
        return self._load()[index]

    def __len__(self) -> int:
        return len(self._load())


@dataclass
class Turn:
    request: object
    bot: Bot
    conversation: Conversation
    question: str
    history: Sequence[dict]  # a LazyHistory for a returning visitor
    new_conversation: bool
    vector: list[float] | None = None  # the question's embedding (chat.answering.pipeline)


def _prepare_turn(request, slug: str) -> Turn | HttpResponse:
    """Validate, rate-limit and record the customer's message (sync: ORM and Redis), in the
    bot's language (its error messages)."""
    bot, conversation = bot_and_conversation(request, slug)
    with translation.override(bot.language or settings.LANGUAGE_CODE):
        return _prepare_bot_turn(request, bot, conversation)


def _prepare_bot_turn(request, bot: Bot, conversation: Conversation | None) -> Turn | HttpResponse:
    question = (request.POST.get("message") or "").strip()
    if not question:
        return _error(request, bot, conversation, _("Type a question first."), 400)
    if len(question) > settings.CHAT_MAX_MESSAGE_CHARS:
        return _error(
            request,
            bot,
            conversation,
            _("Your message is %(n)s characters long; the limit is %(max)s. Please shorten it.")
            % {"n": len(question), "max": settings.CHAT_MAX_MESSAGE_CHARS},
            400,
        )
    try:
        limit_visitor(request, bot, conversation)
    except ratelimit.RateLimited as exc:
        return _error(request, bot, conversation, rate_limited_text(exc), 429, exc.retry_after)
    new = conversation is None
    if new:
        channel = "widget" if request.POST.get("embed") == "1" else "web"
        conversation = services.conversation_start(bot=bot, channel=channel)
        count_first_message(request, bot, conversation)
        history = []
    else:
        history = LazyHistory(conversation)
    return Turn(request, bot, conversation, question, history, new)


def _record_reply(turn: Turn, answer) -> dict:
    """Save the question with its reply (one transaction) and build the client's payload."""
    message = services.turn_record(
        conversation=turn.conversation, question=turn.question, answer=answer
    )
    return _reply_payload(turn, message)


def _record_failure(turn: Turn) -> dict:
    with translation.override(turn.bot.language):
        return _record_reply(turn, Answer(text=_(ERROR_TEXT), path=Message.Path.ERROR))


def _record_question_only(turn: Turn) -> None:
    services.message_record(
        conversation=turn.conversation, role=Message.Role.USER, text=turn.question
    )


def _reply_payload(turn: Turn, message: Message) -> dict:
    view = message_view(message)
    # The view sets no language (chat_ask), and streamed replies render after it returned.
    with translation.override(turn.bot.language):
        fragment = render_to_string(
            "chat/page.html#message",
            {
                "m": view,
                "chat": public_profile(turn.bot),
                "conversation_id": conversation_token(turn.conversation),
                "embed": turn.request.POST.get("embed") == "1",
            },
            request=turn.request,
        )
    return {
        "conversation": conversation_token(turn.conversation),
        "message": {k: view[k] for k in ("id", "text", "html", "sources", "path", "related")},
        "fragment": fragment,
    }


def _answer_whole(turn: Turn) -> dict:
    try:
        for kind, value in answer_stream(
            turn.bot, turn.question, history=turn.history, vector=turn.vector
        ):
            if kind == "done":
                return _record_reply(turn, value)
    except Exception:
        log.exception("Answering in conversation %s failed", turn.conversation.public_id)
    return _record_failure(turn)


def sse(event: str, data) -> bytes:
    return f"event: {event}\ndata: {stream_json(data)}\n\n".encode()


async def _answer_events(turn: Turn, ticket: thread_pool.Ticket):
    recorded = False
    try:
        yield sse("start", {"conversation": conversation_token(turn.conversation)})
        async with aclosing(
            answer_events(turn.bot, turn.question, history=turn.history, vector=turn.vector)
        ) as events:
            async for kind, value in events:
                if kind == "token":
                    yield sse("token", {"text": value})
                else:
                    payload = await thread_pool.run(_record_reply, turn, value)
                    recorded = True
                    yield sse("done", payload)
    except Exception:
        log.exception("Answering in conversation %s failed", turn.conversation.public_id)
        payload = await thread_pool.run(_record_failure, turn)
        recorded = True
        yield sse("done", payload)
    finally:
        try:
            if not recorded:  # the visitor left mid-answer: keep their question for the owner
                await thread_pool.run(_record_question_only, turn)
        finally:
            ticket.release()


def _prepare_and_embed(
    request, slug: str, *, answer: bool = False
) -> tuple[Turn | HttpResponse, Future | None, dict | None]:
    """_prepare_turn, then the question's embedding started (batched): (turn, the embedding
    still in its batch or None, the client's payload or None). When the vector is ready at once
    (this process remembers the question) and `answer` is set, the whole answer is recorded too,
    on the same pool thread: one trip to the pool instead of two. Overloaded propagates."""
    turn = _prepare_turn(request, slug)
    if not isinstance(turn, Turn):
        return turn, None, None
    pending = start_query_vector(turn.bot, turn.question)
    if isinstance(pending, Future):  # awaited on the event loop, holding no answer thread
        return turn, pending, None
    turn.vector = pending
    return turn, None, (_answer_whole(turn) if answer else None)


def _busy(request, exc: Overloaded):
    """503 with Retry-After: the answer queue or the embedding queue is full."""
    if _wants(request) == "html":
        response = HttpResponse(
            _(thread_pool.OVERLOADED_TEXT), status=503, content_type="text/plain"
        )
    else:
        response = JsonResponse(
            {"error": _(thread_pool.OVERLOADED_TEXT), "retry_after": exc.retry_after}, status=503
        )
    response["Retry-After"] = str(exc.retry_after)
    return response


@require_POST
async def chat_ask(request, slug: str):
    """One customer question. Streams SSE (Accept: text/event-stream), answers JSON
    (Accept: application/json), or redirects back to the page (a plain form post, no JS).
    503 with Retry-After when this server already has all the questions it can queue.

    A posted conversation the visitor cannot prove is theirs (a bare public_id, a forged or
    expired token; see conversation_token) is ignored: the question starts a new conversation
    of the visitor's own rather than failing, so a page holding a stale id still gets answers,
    and nothing is written into the conversation that id names.

    Not wrapped in in_bot_language: that lookup cost every question a trip to the answer pool
    and a query of its own (benchmarks/chat_load.py). _prepare_turn switches to the bot's
    language with the bot it loads anyway, and the reply renders in it (_reply_payload)."""
    try:
        ticket = thread_pool.admit()
    except Overloaded as exc:
        return _busy(request, exc)
    streaming = False
    wants = _wants(request)
    try:
        try:
            turn, pending, payload = await thread_pool.run(
                _prepare_and_embed, request, slug, answer=wants != "sse"
            )
        except Overloaded as exc:
            return _busy(request, exc)
        if isinstance(turn, HttpResponse):
            return turn
        if pending is not None:  # the question waits for its batch here, not on a pool thread
            turn.vector = await finish_query_vector(turn.bot, pending)
            if wants != "sse":
                payload = await thread_pool.run(_answer_whole, turn)
        if wants == "sse":
            events = _answer_events(turn, ticket)
            weakref.finalize(events, ticket.release)  # a stream that never starts
            streaming = True
            response = StreamingHttpResponse(events, content_type="text/event-stream")
            response["Cache-Control"] = "no-cache"
            response["X-Accel-Buffering"] = "no"  # nginx would otherwise hold tokens back
        elif wants == "json":
            response = JsonResponse(payload)
        else:
            response = redirect(_page_url(turn.bot, request) + "#end", permanent=False)
            response.status_code = 303
    finally:
        if not streaming:
            ticket.release()
    if turn.new_conversation:
        remember_conversation(request, response, turn.bot, turn.conversation)
    return response


@require_POST
@in_bot_language
def chat_rate(request, slug: str, message_id: int):
    bot = public_bot(slug)
    conversation = visitor_conversation(request, bot)
    if conversation is None:
        return _error(request, bot, None, _("That conversation has ended."), 404)
    message = get_object_or_404(
        Message, pk=message_id, conversation=conversation, role=Message.Role.BOT
    )
    value = {"up": 1, "down": -1}.get(request.POST.get("value", ""))
    if value is None:
        return _error(request, bot, conversation, _("Choose thumbs up or thumbs down."), 400)
    services.message_rate(message=message, rating=value)
    if _wants(request) == "html":
        return redirect(_page_url(bot, request) + f"#m{message.pk}")
    return JsonResponse({"rating": value})


@require_POST
@in_bot_language
def chat_handoff(request, slug: str):
    bot = public_bot(slug)
    conversation = visitor_conversation(request, bot)
    if conversation is None and request.POST.get("conversation"):
        # A conversation this visitor cannot prove is theirs (a bare or stale id): handing it
        # off would mail its transcript to whatever address was typed.
        return _error(request, bot, None, _("That conversation has ended."), 404)
    try:
        limit_visitor(request, bot, conversation)
    except ratelimit.RateLimited as exc:
        return _error(request, bot, conversation, rate_limited_text(exc), 429, exc.retry_after)
    email = (request.POST.get("email") or "").strip()
    try:
        if conversation is None:
            validate_email(email)
            channel = "widget" if request.POST.get("embed") == "1" else "web"
            conversation = services.conversation_start(bot=bot, channel=channel)
            count_first_message(request, bot, conversation)
            new = True
        else:
            new = False
        services.conversation_handoff(conversation=conversation, email=email)
    except ValidationError:
        return _error(
            request,
            bot,
            conversation,
            _("Please enter a valid email address so we can reply."),
            400,
        )
    if _wants(request) == "html":
        response = redirect(_page_url(bot, request, handoff="sent"))
    else:
        response = JsonResponse({"conversation": conversation_token(conversation), "handoff": True})
    if new:
        remember_conversation(request, response, bot, conversation)
    return response


async def healthz(request):
    """A static response through the same stack: the floor for load benchmarks."""
    return HttpResponse(b"ok", content_type="text/plain")
