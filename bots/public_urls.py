"""Public URLs, mounted at /c/<slug>/ by askhandle/urls.py: the chat page and its actions."""

from django.urls import path

from . import public

app_name = "chat"

urlpatterns = [
    path("", public.chat_page, name="page"),
    path("ask/", public.chat_ask, name="ask"),
    path("messages/<int:message_id>/rate/", public.chat_rate, name="rate"),
    path("handoff/", public.chat_handoff, name="handoff"),
    path("widget.json", public.widget_config, name="widget_config"),
]
