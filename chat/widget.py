"""The chat widget: the script a business embeds on its site, the config it fetches
cross-origin, and who may frame the chat page (the owner's allowed sites, chat.models.Widget).
"""

from __future__ import annotations

import re
from functools import cache

from django.conf import settings
from django.http import HttpResponse, JsonResponse
from django.urls import reverse
from django.utils import translation
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET

from bots.models import Bot

from .i18n import in_bot_language
from .models import Widget
from .visitors import public_bot

SUBDOMAIN_RE = re.compile(r"[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)*")


def frame_policy(response, bot: Bot):
    """The chat page may be framed by its own site and the owner's allowed origins only."""
    ancestors = " ".join(["'self'", *Widget.of(bot).allowed_origin_list])
    response["Content-Security-Policy"] = (
        "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
        "img-src 'self' data:; connect-src 'self'; form-action 'self'; base-uri 'none'; "
        f"object-src 'none'; frame-ancestors {ancestors}"
    )
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
