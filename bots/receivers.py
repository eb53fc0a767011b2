"""A new bot gets a row of every later app's settings model (bots.models.BotSettings)."""

from django.apps import apps
from django.db.models.signals import post_save
from django.dispatch import receiver

from .models import Bot, BotSettings


@receiver(post_save, sender=Bot, dispatch_uid="bots.settings_rows")
def settings_rows_for_a_new_bot(sender, instance: Bot, created: bool, raw=False, **kwargs) -> None:
    """Fixtures (raw) bring their own rows; a bot saved without signals gets each on first read."""
    if created and not raw:
        for model in apps.get_models():
            if issubclass(model, BotSettings):
                model.objects.get_or_create(bot=instance)
