"""Tenant access for knowledge: every lookup is scoped to a bot the user may see (404 otherwise)."""

from django.shortcuts import get_object_or_404

from bots.access import get_bot_for_user

from .models import FaqEntry, Source


def get_source_for_user(user, bot_id: int, source_id: int) -> tuple:
    bot = get_bot_for_user(user, bot_id)
    return bot, get_object_or_404(Source, pk=source_id, bot=bot)


def get_faq_entry_for_user(user, bot_id: int, entry_id: int) -> tuple:
    """Any entry of the user's bot, hand-written or imported (an edit marks an imported source
    as edited, so re-reading its file never undoes it: knowledge.services.faq_entry_update)."""
    bot = get_bot_for_user(user, bot_id)
    return bot, get_object_or_404(FaqEntry, pk=entry_id, bot=bot)
