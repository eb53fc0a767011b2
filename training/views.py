"""Training dashboard pieces. The retrieval-tuning card lives on the knowledge page; these views
serve its htmx fragment (polled while a job runs) and its two buttons."""

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_POST

from bots.access import get_bot_for_user

from . import retrieval
from .selectors import tuning_panel_context

PANEL = "training/tuning.html#panel"


def _panel_or_page(request, bot):
    if request.htmx:
        return render(request, PANEL, tuning_panel_context(bot))
    return redirect("knowledge:page", bot_id=bot.pk)


@login_required
@require_GET
def tuning_panel(request, bot_id: int):
    bot = get_bot_for_user(request.user, bot_id)
    return _panel_or_page(request, bot)


@login_required
@require_POST
def tuning_start(request, bot_id: int):
    """Tune now (also turns automatic tuning back on)."""
    bot = get_bot_for_user(request.user, bot_id)
    reason = retrieval.tuning_unavailable_reason(bot)
    if reason:
        messages.error(request, reason)
    else:
        if not bot.retrieval_tuning:
            bot.retrieval_tuning = True
            bot.save(update_fields=["retrieval_tuning"])
        retrieval.tuning_request(bot=bot, reason="requested by the owner", force=True)
        if not request.htmx:
            messages.success(request, "Retrieval tuning queued.")
    return _panel_or_page(request, bot)


@login_required
@require_POST
def tuning_off(request, bot_id: int):
    bot = get_bot_for_user(request.user, bot_id)
    retrieval.tuning_disable(bot=bot)
    bot.refresh_from_db()
    if not request.htmx:
        messages.success(
            request, "Retrieval tuning is off; your knowledge is re-embedded with the base model."
        )
    return _panel_or_page(request, bot)
