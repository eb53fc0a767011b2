"""Tenant access for bots: every dashboard lookup goes through here.

Missing and not-yours give the same 404, so a bot's existence never leaks across workspaces.
"""

from django.shortcuts import get_object_or_404

from .models import Bot


def bots_for_user(user):
    return Bot.objects.filter(workspace__memberships__user=user).distinct()


def get_bot_for_user(user, bot_id: int) -> Bot:
    return get_object_or_404(bots_for_user(user), pk=bot_id)
