"""Filters every dashboard page uses: `{% load dashboard %}`."""

from django import template
from django.utils.text import capfirst
from django.utils.translation import gettext

register = template.Library()


@register.filter
def stage(value: str, default: str = "") -> str:
    """A background job's stage, stored in English by the worker (each marked with gettext_noop
    where it is set), in the reader's language and capitalised; `default` when there is none.
    A stage the catalogues do not know (a provider's own status) is shown as stored."""
    return capfirst(gettext(value) if value else default)
