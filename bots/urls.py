from django.urls import path

from . import conversations, insights, playground, share, views

app_name = "bots"

urlpatterns = [
    path("", views.bot_list, name="list"),
    path("new/", views.bot_create, name="create"),
    path("<int:bot_id>/", views.bot_detail, name="detail"),
    path("<int:bot_id>/settings/", views.bot_edit, name="edit"),
    path("<int:bot_id>/field/<str:field>/", views.bot_field, name="field"),
    path("<int:bot_id>/delete/", views.bot_delete, name="delete"),
    path("system/status/", views.system_status, name="system_status"),
    path("<int:bot_id>/conversations/", conversations.conversation_list, name="conversations"),
    path(
        "<int:bot_id>/conversations/export.csv",
        conversations.conversation_export,
        name="conversation_export",
    ),
    path(
        "<int:bot_id>/conversations/<uuid:public_id>/",
        conversations.conversation_detail,
        name="conversation",
    ),
    path("<int:bot_id>/insights/", insights.insights, name="insights"),
    path("<int:bot_id>/insights/answer/", insights.insights_add_answer, name="insights_add_answer"),
    path("<int:bot_id>/share/", share.bot_share, name="share"),
    path("<int:bot_id>/test/", playground.playground, name="playground"),
    path("<int:bot_id>/share/keys/", share.bot_api_key_create, name="api_key_create"),
    path(
        "<int:bot_id>/share/keys/<int:key_id>/revoke/",
        share.bot_api_key_revoke,
        name="api_key_revoke",
    ),
]
