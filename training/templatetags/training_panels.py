"""Training's cards on other apps' pages. The knowledge page shows the retrieval-tuning card
with `{% load training_panels %}{% tuning_panel bot %}`: knowledge (an earlier app) never
imports training, and the card keeps rendering on the server, so it works without JavaScript.
The bot's Settings page shows the calibration card the same way (`{% calibration_panel bot %}`),
and its Overview the Answering card (`{% answering_panel bot %}`)."""

from django import template
from django.template.loader import render_to_string
from django.utils.translation import gettext_lazy

from ..answering import answering
from ..datasets import KINDS
from ..selectors import calibration_panel_context, tuning_panel_context

register = template.Library()


@register.simple_tag(takes_context=True)
def tuning_panel(context, bot) -> str:
    return render_to_string(
        "training/tuning.html#panel", tuning_panel_context(bot), request=context.get("request")
    )


@register.simple_tag(takes_context=True)
def calibration_panel(context, bot) -> str:
    return render_to_string(
        "training/calibration.html#panel",
        calibration_panel_context(bot),
        request=context.get("request"),
    )


@register.simple_tag(takes_context=True)
def answering_panel(context, bot) -> str:
    return render_to_string(
        "training/answering.html",
        {"bot": bot, "answering": answering(bot)},
        request=context.get("request"),
    )


ROLES = {
    "system": gettext_lazy("system"),
    "user": gettext_lazy("customer"),
    "assistant": gettext_lazy("bot"),
}


@register.filter
def example_kind(kind: str) -> str:
    """A training example's kind (training.datasets) in the owner's words."""
    return KINDS.get(kind, kind)


@register.filter
def message_role(role: str) -> str:
    """A training example's message role in the owner's words."""
    return ROLES.get(role, role)
