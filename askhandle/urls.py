from django.contrib import admin
from django.shortcuts import redirect
from django.urls import include, path

admin.site.site_header = "AskHandle administration"
admin.site.site_title = "AskHandle admin"

urlpatterns = [
    path("", lambda request: redirect("bots:list"), name="home"),
    path("accounts/", include("accounts.urls")),
    path("bots/", include("bots.urls")),
    path("bots/<int:bot_id>/knowledge/", include("knowledge.urls")),
    path("bots/<int:bot_id>/training/", include("training.urls")),
    path("admin/", admin.site.urls),
    # The public chat page and widget, the /v1 API, and the owner's chat pages (chat/urls.py).
    path("", include("chat.urls")),
]
# Uploaded knowledge files (MEDIA_ROOT) are private to their workspace: never served as URLs.
