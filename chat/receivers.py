"""Chat's side of a bot's life: every new bot gets its Share & embed settings (Widget)."""

from .models import Widget


def bot_created_widget(sender, instance, created: bool, raw: bool = False, **kwargs) -> None:
    """post_save of bots.Bot (connected in ChatConfig.ready): a new bot gets its Widget row with
    the defaults. Fixtures (raw) bring their own rows; a bot saved without signals gets one on
    first read (Widget.of)."""
    if created and not raw:
        Widget.objects.get_or_create(bot=instance)
