from django.apps import AppConfig


class ChatConfig(AppConfig):
    """What customers and developers talk to: the answer pipeline, the public chat page and
    widget, the OpenAI-compatible /v1 API and its keys, rate limits, conversations, insights,
    and the owner's test, compare and share pages. Its own models are the Compare tab's
    (LabelledQuestion, Evaluation); Conversation, Message and ApiKey still live in bots, whose
    tables predate this app."""

    name = "chat"

    def ready(self) -> None:
        # The owner's labels are the bot's real out-of-scope traffic: calibration (training,
        # which comes before chat) reads them through this hook.
        from training.calibration import observed_source

        from .selectors import labelled_for_calibration

        observed_source(labelled_for_calibration)
