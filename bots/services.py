from django.db import transaction
from django.utils.text import slugify

from accounts.models import Workspace

from .models import Bot


def unique_bot_slug(name: str) -> str:
    base = slugify(name)[:50] or "bot"
    slug, n = base, 2
    while Bot.objects.filter(slug=slug).exists():
        slug, n = f"{base}-{n}", n + 1
    return slug


def bot_create(*, workspace: Workspace, name: str, **fields) -> Bot:
    fields.setdefault("slug", unique_bot_slug(name))
    bot = Bot(workspace=workspace, name=name, **fields)
    bot.full_clean()
    bot.save()
    return bot


def bot_update(*, bot: Bot, **fields) -> Bot:
    for key, value in fields.items():
        setattr(bot, key, value)
    bot.full_clean()
    bot.save()
    return bot


@transaction.atomic
def bot_delete(*, bot: Bot) -> None:
    bot.delete()
