from django.db import transaction
from django.utils.text import slugify

from accounts.models import Workspace

from . import languages
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
    _speak_language(bot)
    bot.full_clean()
    bot.save()
    return bot


def bot_update(*, bot: Bot, **fields) -> Bot:
    """Save the given fields. A new provider, embedding model or language starts the switch of the
    bot's vectors (knowledge.reembedding, through bots.signals; a language has its own embedding
    model and text search); the old ones keep answering until it is done."""
    # From the database: a ModelForm has already put the new values on the instance.
    before = (
        Bot.objects.filter(pk=bot.pk).values_list("provider", "embedding_model", "language").first()
    )
    for key, value in fields.items():
        setattr(bot, key, value)
    if before and before[2] != bot.language:
        fields = {**fields, **{field: None for field in _speak_language(bot)}}
    bot.full_clean()
    # Only these fields: workers change others (tuned_embedding_model, serving_embedding) meanwhile.
    bot.save(update_fields=[*fields, "updated_at"])
    if before and before != (bot.provider, bot.embedding_model, bot.language):
        embedding_settings_changed.send(
            sender=Bot,
            bot=bot,
            provider_before=before[0],
            model_before=before[1],
            language_before=before[2],
        )
    return bot


def _speak_language(bot: Bot) -> list[str]:
    """Put the greeting, fallback message and persona into the bot's language where they are
    still a default (in any language): a new Dutch bot greets in Dutch, not with the English
    default.
    Returns the fields changed."""
    changed = []
    for field, text in languages.default_texts(bot.language).items():
        current = getattr(bot, field) or ""
        if current != text and languages.is_default_text(field, current):
            setattr(bot, field, text)
            changed.append(field)
    return changed


@transaction.atomic
def bot_delete(*, bot: Bot) -> None:
    bot.delete()
