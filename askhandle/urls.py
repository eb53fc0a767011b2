from django.conf import settings
from django.contrib import admin
from django.shortcuts import redirect
from django.urls import include, path

admin.site.site_header = "AskHandle administration"
admin.site.site_title = "AskHandle admin"

urlpatterns = [
    path("", lambda request: redirect("bots:list"), name="home"),
    path("accounts/", include("accounts.urls")),
    path("bots/", include("bots.urls")),
    path("admin/", admin.site.urls),
]

if settings.DEBUG:
    from django.conf.urls.static import static

    urlpatterns += static(settings.MEDIA_URL, document_root=settings.MEDIA_ROOT)
