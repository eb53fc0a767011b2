from django.contrib import admin
from django.shortcuts import redirect
from django.urls import include, path

from bots import api, public

admin.site.site_header = "AskHandle administration"
admin.site.site_title = "AskHandle admin"

urlpatterns = [
    path("", lambda request: redirect("bots:list"), name="home"),
    path("accounts/", include("accounts.urls")),
    path("bots/", include("bots.urls")),
    path("bots/<int:bot_id>/knowledge/", include("knowledge.urls")),
    path("bots/<int:bot_id>/training/", include("training.urls")),
    path("admin/", admin.site.urls),
    # Public: chat page + widget (bots/public.py), OpenAI-compatible API (bots/api.py).
    path("c/<slug:slug>/", include("bots.public_urls")),
    path("widget.js", public.widget_js, name="widget_js"),
    path("healthz", public.healthz, name="healthz"),
    path("v1/chat/completions", api.chat_completions, name="api_chat_completions"),
    path("v1/models", api.models, name="api_models"),
    path("v1/models/<str:model>", api.model_detail, name="api_model"),
]
# Uploaded knowledge files (MEDIA_ROOT) are private to their workspace: never served as URLs.
