"""The public chat speaks its bot's language (Bot.language): its own words (buttons, notices,
errors, footer) come from the locale/ catalogues, the owner's words (greeting, answers) are
shown as written."""

from __future__ import annotations

from functools import wraps
from inspect import iscoroutinefunction

from django.conf import settings
from django.utils import translation

from bots.models import Bot

from .answering import thread_pool


def bot_language(slug: str) -> str:
    language = Bot.objects.filter(slug=slug).values_list("language", flat=True).first()
    return language or settings.LANGUAGE_CODE


def in_bot_language(view):
    """Run a public view (with a `slug` argument) in its bot's language, whatever the dashboard
    language of the visitor (accounts.middleware), and say so in Content-Language. An answer
    streamed after the view returns is rendered outside this; chat.public overrides the
    language there."""
    if iscoroutinefunction(view):

        @wraps(view)
        async def async_wrapper(request, slug: str, *args, **kwargs):
            # On the answer pool, whose threads give their database connection back after each
            # piece: on the request's own thread it would be held until the (streamed) answer
            # ends, one per waiting customer, and 50 of them emptied the connection pool.
            language = await thread_pool.run(bot_language, slug)
            # The override is a context variable, so sync_to_async steps inherit it.
            with translation.override(language):
                response = await view(request, slug, *args, **kwargs)
            return _content_language(response, language)

        return async_wrapper

    @wraps(view)
    def wrapper(request, slug: str, *args, **kwargs):
        language = bot_language(slug)
        with translation.override(language):
            response = view(request, slug, *args, **kwargs)
        return _content_language(response, language)

    return wrapper


def _content_language(response, language: str):
    # The dashboard's language middleware sets the header only where a view has not: the page
    # is in the bot's language, whatever the visitor's browser or dashboard choice.
    response.headers["Content-Language"] = language
    return response


def chat_strings() -> dict:
    """chat.js's own words, in the active language (the page embeds them with json_script)."""
    from django.utils.translation import gettext as _

    return {
        "blocked": _("Your browser blocks this chat inside the page."),
        "openWindow": _("Open the chat in a new window"),
        "expired": _("This chat session expired. Please reload the page."),
        "wrong": _("Sorry, something went wrong. Please try again."),
        # %(n)s and %(max)s are filled in by chat.js.
        "tooLong": _("Your message is %(n)s characters long; the limit is %(max)s."),
        "dropped": _("The connection dropped. Please try again."),
        "handoffThanks": _(
            "Thanks! We've passed your conversation to the team; they'll reply by email."
        ),
    }
