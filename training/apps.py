from django.apps import AppConfig


class TrainingConfig(AppConfig):
    name = "training"

    def ready(self) -> None:
        from . import chat_tuning, receivers  # noqa: F401  connect their signal receivers
