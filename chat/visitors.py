"""Which bot and which conversation a public visitor is talking to: the bot by its public slug,
the conversation by a signed cookie or a signed token the page keeps (never by a bare id).

Used by the chat page and its answer stream, ratings and hand-off (chat.public) and the widget
(chat.widget).
"""

from __future__ import annotations

import uuid
from datetime import timedelta

from django.core import signing
from django.shortcuts import get_object_or_404

from bots.models import Bot

from .models import Conversation

COOKIE_SALT = "askhandle.chat.conversation"
COOKIE_MAX_AGE = timedelta(days=90)
TOKEN_SALT = "askhandle.chat.conversation-token"


def cookie_name(bot: Bot) -> str:
    return _cookie_name(bot.slug)


def _cookie_name(slug: str) -> str:  # read by slug, before the bot is loaded
    return f"ahc_{slug}"


# Read with the bot in the same query: the page's frame policy and widget.json read its widget,
# every answer the model that serves its knowledge.
PUBLIC_BOT_RELATED = ("widget", "embedding_state")


def public_bot(slug: str) -> Bot:
    return get_object_or_404(Bot.objects.select_related(*PUBLIC_BOT_RELATED), slug=slug)


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
            Conversation.objects.select_related(
                "bot", *(f"bot__{name}" for name in PUBLIC_BOT_RELATED)
            )
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
