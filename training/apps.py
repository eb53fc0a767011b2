from django.apps import AppConfig


class TrainingConfig(AppConfig):
    name = "training"

    def ready(self) -> None:
        from . import receivers  # noqa: F401  connects to knowledge's signals
