from django.db import transaction
from django.utils.text import slugify

from accounts.models import Workspace

from .models import Bot
from .signals import embedding_settings_changed


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
    """Save the given fields. A new provider or embedding model starts the switch of the bot's
    vectors (knowledge.reembedding, through bots.signals); the old ones keep answering until it is done."""
    # From the database: a ModelForm has already put the new values on the instance.
    before = Bot.objects.filter(pk=bot.pk).values_list("provider", "embedding_model").first()
    for key, value in fields.items():
        setattr(bot, key, value)
    bot.full_clean()
    # Only these fields: workers change others (tuned_embedding_model, serving_embedding) meanwhile.
    bot.save(update_fields=[*fields, "updated_at"])
    if before and before != (bot.provider, bot.embedding_model):
        embedding_settings_changed.send(
            sender=Bot, bot=bot, provider_before=before[0], model_before=before[1]
        )
    return bot


@transaction.atomic
def bot_delete(*, bot: Bot) -> None:
    bot.delete()
