"""The public chat: the page customers see at /c/<slug>/, its answer stream, ratings, hand-off,
and the widget's script and config.

Nothing here is tenant-scoped: a bot's slug is public. Templates get a `chat` dict of the public
fields only (name, greeting, colour), never the Bot, so owner data cannot reach a page by accident.

Answers stream as server-sent events from an async view (ASGI). The answer pipeline is sync (ORM,
model calls), so each piece runs on the bounded answer pool (chat.workers): the event loop stays
free, a slow answer never holds a thread another request needs, and beyond the pool's queue a
question gets 503 with Retry-After.
"""

from __future__ import annotations

import logging
import re
import uuid
import weakref
from collections.abc import Sequence
from concurrent.futures import Future
from contextlib import aclosing
from dataclasses import dataclass
from datetime import timedelta
from functools import cache
from urllib.parse import urlencode

from django.conf import settings
from django.core import signing
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

from . import ratelimit, services, workers
from .answer import Answer, answer_stream
from .i18n import chat_strings, in_bot_language
from .markup import render_markdown, stream_json
from .models import Conversation, Message, Widget
from .streaming import answer_events, finish_query_vector, start_query_vector

log = logging.getLogger(__name__)

COOKIE_SALT = "askhandle.chat.conversation"
COOKIE_MAX_AGE = timedelta(days=90)
TOKEN_SALT = "askhandle.chat.conversation-token"
SUBDOMAIN_RE = re.compile(r"[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)*")
HISTORY_TURNS = 6
ERROR_TEXT = gettext_noop(
    "Sorry, something went wrong while answering. Please try again in a moment."
)


def cookie_name(bot: Bot) -> str:
    return _cookie_name(bot.slug)


def _cookie_name(slug: str) -> str:  # read by slug, before the bot is loaded
    return f"ahc_{slug}"


def public_bot(slug: str) -> Bot:
    # With its widget settings in the same query: the page's frame policy and widget.json read them.
    return get_object_or_404(Bot.objects.select_related("widget"), slug=slug)


def public_profile(bot: Bot) -> dict:
    """Everything about a bot that a customer may see on its chat page. (The widget's bubble,
    from the bot's Widget, goes out in widget_config.)"""
    return {
        "slug": bot.slug,
        "name": bot.name,
        "greeting": bot.greeting,
        "colour": bot.primary_colour,
    }


def conversation_token(conversation: Conversation) -> str:
    """The handle the visitor's page keeps (the forms' hidden field, localStorage) to come back
    to its conversation where cookies are blocked (third-party iframes): the public_id signed
    by this server, valid as long as the cookie. The bare public_id is not enough: the owners
    see it (dashboard addresses, the hand-off e-mail) and whoever learnt one could otherwise
    write into that visitor's conversation and hand it off to their own address."""
    return signing.TimestampSigner(salt=TOKEN_SALT).sign(str(conversation.public_id))


def _token_public_id(token: str) -> uuid.UUID | None:
    try:
        value = signing.TimestampSigner(salt=TOKEN_SALT).unsign(token, max_age=COOKIE_MAX_AGE)
        return uuid.UUID(value)
    except (signing.BadSignature, ValueError):
        return None


def _visitor_conversation_id(request, slug: str) -> uuid.UUID | None:
    """The signed cookie's public_id, else the signed token the page posted; None when neither
    proves anything (a bare or forged id counts as no conversation)."""
    public_id = request.get_signed_cookie(
        _cookie_name(slug), default=None, salt=COOKIE_SALT, max_age=COOKIE_MAX_AGE
    )
    if public_id:
        try:
            return uuid.UUID(str(public_id))
        except ValueError:
            pass
    return _token_public_id(request.POST.get("conversation") or "")


def visitor_conversation(request, bot: Bot) -> Conversation | None:
    """The visitor's conversation: the signed cookie, else the signed token the page kept in
    localStorage (see conversation_token). Never a conversation named by a bare public_id."""
    public_id = _visitor_conversation_id(request, bot.slug)
    if public_id is None:
        return None
    return Conversation.objects.filter(bot=bot, public_id=public_id).first()


def bot_and_conversation(request, slug: str) -> tuple[Bot, Conversation | None]:
    """public_bot and visitor_conversation in one query for a returning visitor (every question
    after the first), in two for a new one; 404 for an unknown bot."""
    public_id = _visitor_conversation_id(request, slug)
    if public_id is not None:
        conversation = (
            Conversation.objects.select_related("bot")
            .filter(bot__slug=slug, public_id=public_id)
            .first()
        )
        if conversation is not None:
            return conversation.bot, conversation
    return public_bot(slug), None


def remember_conversation(request, response, bot: Bot, conversation: Conversation) -> None:
    # Inside a third-party iframe only SameSite=None cookies are sent, and those need HTTPS.
    secure = request.is_secure()
    response.set_signed_cookie(
        cookie_name(bot),
        str(conversation.public_id),
        salt=COOKIE_SALT,
        max_age=COOKIE_MAX_AGE,
        httponly=True,
        secure=secure,
        samesite="None" if secure else "Lax",
        path=f"/c/{bot.slug}/",
    )


def frame_policy(response, bot: Bot):
    """The chat page may be framed by its own site and the owner's allowed origins only."""
    ancestors = " ".join(["'self'", *Widget.of(bot).allowed_origin_list])
    response["Content-Security-Policy"] = (
        "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
        "img-src 'self' data:; connect-src 'self'; form-action 'self'; base-uri 'none'; "
        f"object-src 'none'; frame-ancestors {ancestors}"
    )
    return response


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
    first time something looks: only a written answer does (chat.answer's prompt), so a direct
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
    vector: list[float] | None = None  # the question's embedding (chat.streaming)


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


async def _answer_events(turn: Turn, ticket: workers.Ticket):
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
                    payload = await workers.run(_record_reply, turn, value)
                    recorded = True
                    yield sse("done", payload)
    except Exception:
        log.exception("Answering in conversation %s failed", turn.conversation.public_id)
        payload = await workers.run(_record_failure, turn)
        recorded = True
        yield sse("done", payload)
    finally:
        try:
            if not recorded:  # the visitor left mid-answer: keep their question for the owner
                await workers.run(_record_question_only, turn)
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
        response = HttpResponse(_(workers.OVERLOADED_TEXT), status=503, content_type="text/plain")
    else:
        response = JsonResponse(
            {"error": _(workers.OVERLOADED_TEXT), "retry_after": exc.retry_after}, status=503
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
        ticket = workers.admit()
    except Overloaded as exc:
        return _busy(request, exc)
    streaming = False
    wants = _wants(request)
    try:
        try:
            turn, pending, payload = await workers.run(
                _prepare_and_embed, request, slug, answer=wants != "sse"
            )
        except Overloaded as exc:
            return _busy(request, exc)
        if isinstance(turn, HttpResponse):
            return turn
        if pending is not None:  # the question waits for its batch here, not on a pool thread
            turn.vector = await finish_query_vector(turn.bot, pending)
            if wants != "sse":
                payload = await workers.run(_answer_whole, turn)
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


@require_GET
@in_bot_language
def widget_config(request, slug: str):
    """Public settings for widget.js, fetched cross-origin from the customer's site."""
    bot = public_bot(slug)
    origin = request.headers.get("Origin", "")
    widget = Widget.of(bot)
    response = JsonResponse(
        {
            "name": bot.name,
            "colour": widget.colour,
            "position": widget.position,
            "label": _("Chat with %(name)s") % {"name": bot.name},
            "lang": translation.get_language(),
            "url": request.build_absolute_uri(reverse("chat:page", args=[bot.slug])) + "?embed=1",
            # The page refuses other framers (CSP); telling the widget avoids an empty frame.
            "allowed": not origin
            or origin_allowed(origin, widget.allowed_origin_list)
            or _same_origin(request, origin),
        }
    )
    response["Access-Control-Allow-Origin"] = "*"
    response["Cache-Control"] = "public, max-age=60"
    response["Vary"] = "Origin"
    return response


def origin_allowed(origin: str, allowed: list[str]) -> bool:
    """Whether the chat page's frame-ancestors (frame_policy, the same list) let `origin` frame
    it: an origin listed as is, or `scheme://*.host[:port]`, which CSP matches for every
    subdomain of host at any depth, not host itself. The widget checks this before it opens
    the frame, so it must agree with what the browser enforces."""
    for entry in allowed:
        if entry == origin:
            return True
        scheme, wildcard, suffix = entry.partition("://*.")
        if wildcard and origin.startswith(f"{scheme}://") and origin.endswith(f".{suffix}"):
            if SUBDOMAIN_RE.fullmatch(origin[len(scheme) + 3 : -len(suffix) - 1]):
                return True
    return False


def _same_origin(request, origin: str) -> bool:
    return origin == f"{request.scheme}://{request.get_host()}"


@cache
def _widget_source() -> bytes:
    return (settings.BASE_DIR / "static" / "js" / "widget.js").read_bytes()


@require_GET
def widget_js(request):
    body = (
        (settings.BASE_DIR / "static" / "js" / "widget.js").read_bytes()
        if settings.DEBUG
        else _widget_source()
    )
    response = HttpResponse(body, content_type="text/javascript; charset=utf-8")
    response["Cache-Control"] = "public, max-age=300"
    response["Access-Control-Allow-Origin"] = "*"
    return response


async def healthz(request):
    """A static response through the same stack: the floor for load benchmarks."""
    return HttpResponse(b"ok", content_type="text/plain")
