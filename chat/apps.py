from django.apps import AppConfig


class ChatConfig(AppConfig):
    """What customers and developers talk to: the answer pipeline, the public chat page and
    widget, the OpenAI-compatible /v1 API and its keys, rate limits, conversations, insights,
    and the owner's test and share pages. No models of its own: Conversation, Message and
    ApiKey stay in bots (their tables predate this app)."""

    name = "chat"
