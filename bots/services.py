from django.db import transaction
from django.utils.text import slugify

from accounts.models import Workspace

from . import languages
from .models import Bot
from .signals import embedding_settings_changed, thresholds_set_by_hand

# Fitted by training.calibration unless the owner sets them by hand.
THRESHOLDS = {"direct_threshold", "answer_threshold"}


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
    stored = (
        Bot.objects.filter(pk=bot.pk)
        .values("provider", "embedding_model", "language", *sorted(THRESHOLDS))
        .first()
    )
    before = (stored["provider"], stored["embedding_model"], stored["language"]) if stored else None
    for key, value in fields.items():
        setattr(bot, key, value)
    if before and before[2] != bot.language:
        fields = {**fields, **{field: None for field in _speak_language(bot)}}
    bot.full_clean()
    # Only these fields: workers may change others meanwhile.
    bot.save(update_fields=[*fields, "updated_at"])
    if stored and any(stored[name] != getattr(bot, name) for name in THRESHOLDS & fields.keys()):
        thresholds_set_by_hand.send(sender=Bot, bot=bot)
    # Read by the settings view: say the knowledge is being re-embedded (knowledge's receiver).
    bot.embedding_switch_started = False
    if before and before != (bot.provider, bot.embedding_model, bot.language):
        responses = embedding_settings_changed.send(
            sender=Bot,
            bot=bot,
            provider_before=before[0],
            model_before=before[1],
            language_before=before[2],
        )
        bot.embedding_switch_started = any(response is True for _, response in responses)
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
