from django.urls import path

from . import views

app_name = "bots"

urlpatterns = [
    path("", views.bot_list, name="list"),
    path("new/", views.bot_create, name="create"),
    path("<int:bot_id>/", views.bot_detail, name="detail"),
    path("<int:bot_id>/settings/", views.bot_edit, name="edit"),
    path("<int:bot_id>/field/<str:field>/", views.bot_field, name="field"),
    path("<int:bot_id>/language/", views.bot_language, name="language"),
    path("<int:bot_id>/delete/", views.bot_delete, name="delete"),
    path("system/status/", views.system_status, name="system_status"),
]
