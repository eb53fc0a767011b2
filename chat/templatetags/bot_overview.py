"""Chat's cards on the bot's Overview page: `{% load bot_overview %}{% bot_overview bot %}`.
bots (an earlier app) never imports chat, knowledge or training; the card renders on the server."""

from django import template
from django.template.loader import render_to_string

from ..overview import overview_context

register = template.Library()


@register.simple_tag(takes_context=True)
def bot_overview(context, bot) -> str:
    return render_to_string(
        "chat/overview.html", overview_context(bot), request=context.get("request")
    )
