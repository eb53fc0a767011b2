"""Everything chat serves, mounted at the site root by askhandle/urls.py: the public chat page
and widget (/c/<slug>/, /widget.js), the OpenAI-compatible API (/v1/), and the owner's
conversation, insights, test and share pages under a bot (/bots/<id>/...)."""

from django.urls import include, path

from . import api, compare, conversations, insights, playground, public, share, start, widget

app_name = "chat"

public_patterns = [
    path("", public.chat_page, name="page"),
    path("ask/", public.chat_ask, name="ask"),
    path("messages/<int:message_id>/rate/", public.chat_rate, name="rate"),
    path("handoff/", public.chat_handoff, name="handoff"),
    path("widget.json", widget.widget_config, name="widget_config"),
]

dashboard_patterns = [
    path("conversations/", conversations.conversation_list, name="conversations"),
    path("conversations/export.csv", conversations.conversation_export, name="conversation_export"),
    path(
        "conversations/<uuid:public_id>/",
        conversations.conversation_detail,
        name="conversation",
    ),
    path("insights/", insights.insights, name="insights"),
    path("insights/answer/", insights.insights_add_answer, name="insights_add_answer"),
    path("share/", share.bot_share, name="share"),
    path("share/keys/", share.bot_api_key_create, name="api_key_create"),
    path("share/keys/<int:key_id>/revoke/", share.bot_api_key_revoke, name="api_key_revoke"),
    path("test/", playground.playground, name="playground"),
    path("start/", start.start, name="start"),
    path("compare/", compare.compare, name="compare"),
    path("compare/questions/", compare.upload_questions, name="compare_upload"),
    path("compare/mode/", compare.switch_mode, name="mode_switch"),
    path("compare/<int:evaluation_id>/", compare.evaluation_panel, name="evaluation"),
    path(
        "compare/<int:evaluation_id>/cancel/", compare.evaluation_cancel, name="evaluation_cancel"
    ),
    path("conversations/<uuid:public_id>/label/", compare.label_question, name="label_question"),
    path(
        "conversations/<uuid:public_id>/messages/<int:message_id>/training/",
        conversations.message_training_mark,
        name="message_training_mark",
    ),
]

urlpatterns = [
    path("c/<slug:slug>/", include(public_patterns)),
    path("bots/<int:bot_id>/", include(dashboard_patterns)),
    path("widget.js", widget.widget_js, name="widget_js"),
    path("healthz", public.healthz, name="healthz"),
    path("v1/chat/completions", api.chat_completions, name="api_chat_completions"),
    path("v1/models", api.models, name="api_models"),
    path("v1/models/<str:model>", api.model_detail, name="api_model"),
]
