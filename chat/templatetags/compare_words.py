"""The Compare modes page's stored codes in the reader's language: `{% load compare_words %}`."""

from django import template

from .. import evaluation

register = template.Library()


@register.filter
def mode_name(mode: str) -> str:
    return evaluation._name(mode)


@register.filter
def question_origin(origin: str) -> str:
    return evaluation.ORIGINS.get(origin, origin)
