from django.apps import AppConfig


class BotsConfig(AppConfig):
    name = "bots"

    def ready(self) -> None:
        from . import receivers  # noqa: F401  every new bot gets its settings rows
