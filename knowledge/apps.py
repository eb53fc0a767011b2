from django.apps import AppConfig


class KnowledgeConfig(AppConfig):
    name = "knowledge"

    def ready(self) -> None:
        # Here, not at the top: apps.py is imported before any app's models are loaded.
        from bots.signals import embedding_settings_changed

        from . import receivers  # noqa: F401  files follow their sources
        from .reembedding import embedding_settings_changed_receiver  # imports models

        embedding_settings_changed.connect(
            embedding_settings_changed_receiver, dispatch_uid="knowledge.embedding_change"
        )
