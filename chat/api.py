"""The OpenAI-compatible API: `POST /v1/chat/completions` and `GET /v1/models`.

`model` is the bot's slug; a key reaches exactly one bot. Any OpenAI client works: point its base
URL at `<site>/v1` and use a bot's API key. Errors use OpenAI's shape and status codes, so client
libraries raise their usual exceptions. Sources ride in an extra `askhandle` field that clients
ignore unless they look for it.

Key-authenticated and stateless per call (the client sends the history), so CSRF does not apply.
Each call is recorded as a Conversation on the "api" channel for the owner's dashboard.
"""

from __future__ import annotations

import json
import logging
import time
import uuid
import weakref
from contextlib import aclosing
from dataclasses import dataclass

from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from django.http import HttpResponse, JsonResponse, StreamingHttpResponse
from django.views.decorators.csrf import csrf_exempt

import providers
from bots.models import Bot
from providers import Overloaded
from training.chat_tuning import deployed_chat_model

from . import ratelimit, services
from .answering import (
    answer_events,
    answer_stream,
    finish_query_vector,
    start_query_vector,
    thread_pool,
)
from .apikeys import api_key_authenticate
from .markup import stream_json
from .models import ApiKey, Conversation

log = logging.getLogger(__name__)

ROLES = {"system", "developer", "user", "assistant", "tool"}
# A request body larger than this is refused before it is read into JSON. Clients send the whole
# conversation on every call and it is trimmed to CHAT_MAX_CONTEXT_TOKENS, so this only needs to
# pass long histories, not megabytes (5 MB bodies were accepted and parsed).
MAX_BODY_BYTES = 512 * 1024
FAILED_KEY_SCOPE = "apikey-failed"


def openai_error(
    status: int,
    message: str,
    *,
    type_: str = "invalid_request_error",
    code: str | None = None,
    param: str | None = None,
    retry_after: int | None = None,
):
    response = JsonResponse(
        {"error": {"message": message, "type": type_, "param": param, "code": code}}, status=status
    )
    if retry_after:
        response["Retry-After"] = str(retry_after)
    return response


def _authenticate(request) -> ApiKey | HttpResponse:
    """The request's API key, or the error to answer. An address that sent
    RATE_LIMIT_API_KEY_FAILURES wrong keys in the window gets 429 before its key is looked at,
    so guessing keys stays slow and a right guess inside the block is not confirmed."""
    ip = ratelimit.client_ip(request)
    if retry_after := ratelimit.full(FAILED_KEY_SCOPE, ip, settings.RATE_LIMIT_API_KEY_FAILURES):
        return _too_many_failures(retry_after)
    scheme, _, raw = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not raw.strip():
        return openai_error(
            401,
            "You didn't provide an API key. Send it as 'Authorization: Bearer <key>'.",
            code="invalid_api_key",
        )
    key = api_key_authenticate(raw.strip())
    if key is not None:
        return key
    error = openai_error(
        401, "Incorrect API key provided, or the key was revoked.", code="invalid_api_key"
    )
    try:
        ratelimit.check((FAILED_KEY_SCOPE, ip, settings.RATE_LIMIT_API_KEY_FAILURES))
    except ratelimit.RateLimited as exc:  # this failure filled the window
        return _too_many_failures(exc.retry_after)
    return error


def _too_many_failures(retry_after: int) -> HttpResponse:
    return openai_error(
        429,
        "Too many requests with an invalid API key from your address. "
        f"Please try again in {retry_after} s.",
        type_="requests",
        code="rate_limit_exceeded",
        retry_after=retry_after,
    )


def _limit(request, key: ApiKey) -> HttpResponse | None:
    try:
        ratelimit.check(
            ("apikey", str(key.pk), settings.RATE_LIMIT_API_KEY),
            ("bot", str(key.bot_id), settings.RATE_LIMIT_BOT),
        )
    except ratelimit.RateLimited as exc:
        return openai_error(
            429,
            f"Rate limit reached for this {'bot' if exc.scope == 'bot' else 'API key'}. "
            f"Please try again in {exc.retry_after} s.",
            type_="requests",
            code="rate_limit_exceeded",
            retry_after=exc.retry_after,
        )
    return None


def _model_card(bot: Bot) -> dict:
    """The bot as a model; `root` names the chat model that writes its answers: its deployed
    fine-tuned model (training.chat_tuning), else its provider's chat model."""
    tuned = deployed_chat_model(bot)
    chat_model = bot.chat_model or providers.for_bot(bot).default_chat_model()
    return {
        "id": bot.slug,
        "object": "model",
        "created": int(bot.created_at.timestamp()),
        "owned_by": "askhandle",
        "root": tuned[1] if tuned else chat_model,
        "askhandle": {"mode": bot.mode, "fine_tuned": bool(tuned)},
    }


@csrf_exempt
def models(request):
    if request.method != "GET":
        return openai_error(405, f"Method {request.method} not allowed; use GET.")
    key = _authenticate(request)
    if isinstance(key, HttpResponse):
        return key
    return JsonResponse({"object": "list", "data": [_model_card(key.bot)]})


@csrf_exempt
def model_detail(request, model: str):
    key = _authenticate(request)
    if isinstance(key, HttpResponse):
        return key
    if model != key.bot.slug:
        return _model_not_found(model)
    return JsonResponse(_model_card(key.bot))


def _model_not_found(model: str):
    # Same answer for a missing bot and another workspace's bot: slugs don't leak.
    return openai_error(
        404,
        f"The model `{model}` does not exist or you do not have access to it.",
        code="model_not_found",
        param="model",
    )


def _text(content) -> str | None:
    """A message's text: a string, or the text parts of a content array."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = [p.get("text") for p in content if isinstance(p, dict) and p.get("type") == "text"]
        if all(isinstance(p, str) for p in parts) and parts:
            return "\n".join(parts)
    return None


@dataclass
class ApiTurn:
    bot: Bot
    model: str
    question: str
    history: list[dict]
    stream: bool
    conversation: Conversation | None = None
    vector: list[float] | None = None  # the question's embedding (chat.answering.pipeline)


def estimate_tokens(text: str) -> int:
    """About four characters per token for the BPE tokenizers chat models use: no tokenizer is
    loaded on the request path, and a cap needs an upper estimate, not an exact count."""
    return len(text) // 4 + 1


def trim_history(history: list[dict], question: str, budget: int) -> list[dict]:
    """The most recent messages that fit `budget` tokens together with the question; older
    ones are dropped first, so the model always sees the turns right before the question."""
    left = budget - estimate_tokens(question)
    kept: list[dict] = []
    for message in reversed(history):
        left -= estimate_tokens(message["content"])
        if left < 0:
            break
        kept.append(message)
    return kept[::-1]


def _too_large(request) -> HttpResponse | None:
    declared = request.META.get("CONTENT_LENGTH") or ""
    size = int(declared) if declared.isdigit() else None
    if size is None:
        try:
            size = len(request.body)
        except RequestDataTooBig:
            size = MAX_BODY_BYTES + 1
    if size <= MAX_BODY_BYTES:
        return None
    return openai_error(
        413,
        f"The request body is {size} bytes; the limit is {MAX_BODY_BYTES}. Send fewer or "
        "shorter messages: only the most recent turns are used anyway.",
        code="request_too_large",
        param="messages",
    )


def _parse(request, key: ApiKey) -> ApiTurn | HttpResponse:
    if too_large := _too_large(request):
        return too_large
    try:
        body = json.loads(request.body or b"")
    except (json.JSONDecodeError, UnicodeDecodeError):
        return openai_error(400, "We could not parse the JSON body of your request.")
    if not isinstance(body, dict):
        return openai_error(400, "The request body must be a JSON object.")
    model = body.get("model")
    if not isinstance(model, str) or not model:
        return openai_error(400, "you must provide a model parameter", param="model")
    if model != key.bot.slug:
        return _model_not_found(model)
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        return openai_error(400, "'messages' must be a non-empty array.", param="messages")
    turns = []
    for i, message in enumerate(messages):
        role = message.get("role") if isinstance(message, dict) else None
        text = _text(message.get("content")) if isinstance(message, dict) else None
        if role not in ROLES or text is None:
            return openai_error(
                400,
                f"Invalid message at messages[{i}]: needs a 'role' ({', '.join(sorted(ROLES))}) "
                "and text 'content'.",
                param=f"messages.[{i}]",
            )
        turns.append((role, text))
    if turns[-1][0] != "user":
        return openai_error(400, "The last message must come from the user.", param="messages")
    question = turns[-1][1].strip()
    if not question:
        return openai_error(400, "The last user message is empty.", param="messages")
    limit = settings.CHAT_MAX_MESSAGE_CHARS
    if len(question) > limit:
        return openai_error(
            400,
            f"The last user message is {len(question)} characters; the limit is {limit}.",
            code="string_above_max_length",
            param="messages",
        )
    stream = body.get("stream", False)
    if not isinstance(stream, bool):
        return openai_error(400, "'stream' must be a boolean.", param="stream")
    history = [{"role": r, "content": t} for r, t in turns[:-1] if r in ("user", "assistant")]
    history = trim_history(history, question, settings.CHAT_MAX_CONTEXT_TOKENS)
    return ApiTurn(key.bot, model, question, history, stream)


def _prepare(request) -> ApiTurn | HttpResponse:
    key = _authenticate(request)
    if isinstance(key, HttpResponse):
        return key
    turn = _parse(request, key)
    if isinstance(turn, HttpResponse):
        return turn
    # Counted after validation: a malformed call should not use up the key's quota.
    if limited := _limit(request, key):
        return limited
    return turn


def _extra(turn: ApiTurn, answer) -> dict:
    return {
        "conversation": str(turn.conversation.public_id),
        "path": answer.path,
        "score": answer.score,
        "sources": [s.as_dict() for s in answer.sources],
    }


def _record(turn: ApiTurn, answer) -> None:
    """One conversation per call, question and reply saved in one transaction."""
    reply = services.turn_record(bot=turn.bot, channel="api", question=turn.question, answer=answer)
    turn.conversation = reply.conversation


def _complete(turn: ApiTurn) -> dict:
    for kind, value in answer_stream(
        turn.bot, turn.question, history=turn.history, vector=turn.vector
    ):
        if kind == "done":
            _record(turn, value)
            return {
                "id": f"chatcmpl-{uuid.uuid4().hex}",
                "object": "chat.completion",
                "created": int(time.time()),
                "model": turn.model,
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": value.text},
                        "finish_reason": "stop",
                        "logprobs": None,
                    }
                ],
                "askhandle": _extra(turn, value),
            }
    raise RuntimeError("answer stream ended without an answer")


async def _chunks(turn: ApiTurn, ticket: thread_pool.Ticket):
    try:
        async for piece in _chunks_of(turn):
            yield piece
    finally:
        ticket.release()


async def _chunks_of(turn: ApiTurn):
    base = {
        "id": f"chatcmpl-{uuid.uuid4().hex}",
        "object": "chat.completion.chunk",
        "created": int(time.time()),
        "model": turn.model,
    }

    def chunk(delta: dict, finish=None, **extra) -> bytes:
        data = {
            **base,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish, "logprobs": None}],
            **extra,
        }
        return f"data: {stream_json(data)}\n\n".encode()

    yield chunk({"role": "assistant", "content": ""})
    try:
        async with aclosing(
            answer_events(turn.bot, turn.question, history=turn.history, vector=turn.vector)
        ) as events:
            async for kind, value in events:
                if kind == "token":
                    yield chunk({"content": value})
                else:
                    await thread_pool.run(_record, turn, value)
                    yield chunk({}, "stop", askhandle=_extra(turn, value))
    except Exception:
        log.exception("API answer failed for bot %s", turn.bot.pk)
        error = {
            "message": "The answer failed; please retry.",
            "type": "server_error",
            "param": None,
            "code": None,
        }
        yield f"data: {stream_json({'error': error})}\n\n".encode()
    yield b"data: [DONE]\n\n"


def _prepare_and_embed(request) -> tuple[ApiTurn | HttpResponse, object]:
    """_prepare, then the question's embedding started (batched): (turn, what
    chat.answering.pipeline.start_query_vector gave). Overloaded propagates."""
    turn = _prepare(request)
    if not isinstance(turn, ApiTurn):
        return turn, None
    return turn, start_query_vector(turn.bot, turn.question)


def _busy(exc: Overloaded):
    # OpenAI's own overload answer: clients retry 503s after Retry-After.
    return openai_error(
        503,
        "The server is overloaded. Please retry after a short wait.",
        type_="server_error",
        code="overloaded",
        retry_after=exc.retry_after,
    )


@csrf_exempt
async def chat_completions(request):
    if request.method != "POST":
        return openai_error(405, f"Method {request.method} not allowed; use POST.")
    try:
        ticket = thread_pool.admit()
    except Overloaded as exc:
        return _busy(exc)
    streaming = False
    try:
        try:
            turn, pending = await thread_pool.run(_prepare_and_embed, request)
        except Overloaded as exc:
            return _busy(exc)
        if isinstance(turn, HttpResponse):
            return turn
        # The question waits for its batch here, on the event loop, not on an answer thread.
        turn.vector = await finish_query_vector(turn.bot, pending)
        if turn.stream:
            chunks = _chunks(turn, ticket)
            weakref.finalize(chunks, ticket.release)  # a stream that never starts
            streaming = True
            response = StreamingHttpResponse(chunks, content_type="text/event-stream")
            response["Cache-Control"] = "no-cache"
            response["X-Accel-Buffering"] = "no"
            return response
        try:
            return JsonResponse(await thread_pool.run(_complete, turn))
        except Exception:
            log.exception("API answer failed for bot %s", turn.bot.pk)
            return openai_error(500, "The answer failed; please retry.", type_="server_error")
    finally:
        if not streaming:
            ticket.release()
