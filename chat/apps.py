from django.apps import AppConfig


class ChatConfig(AppConfig):
    """What customers and developers talk to: the answer pipeline, the public chat page and
    widget, the OpenAI-compatible /v1 API and its keys, rate limits, conversations, insights,
    and the owner's test, compare and share pages. Its models are what customers and
    developers leave behind (Conversation, Message, ApiKey), the Compare tab's
    (LabelledQuestion, Evaluation) and the bot's Share & embed settings (Widget)."""

    name = "chat"

    def ready(self) -> None:
        # The owner's labels and approved answers are the bot's real traffic: calibration and the
        # chat fine-tuning set (training, which comes before chat) read them through these hooks.
        from training.sources import approved_source, observed_source

        from .selectors import approved_for_training, labelled_for_calibration

        observed_source(labelled_for_calibration)
        approved_source(approved_for_training)
