from django.urls import path

from . import views

app_name = "training"

urlpatterns = [
    path("retrieval/", views.tuning_panel, name="tuning_panel"),
    path("retrieval/start/", views.tuning_start, name="tuning_start"),
    path("retrieval/off/", views.tuning_off, name="tuning_off"),
    path("fine-tuning/", views.chat_tuning_page, name="chat_tuning"),
    path("fine-tuning/training-set.jsonl", views.chat_tuning_download, name="chat_tuning_download"),
    path("fine-tuning/launch/", views.chat_tuning_launch, name="chat_tuning_launch"),
    path("fine-tuning/base/", views.chat_tuning_undeploy, name="chat_tuning_undeploy"),
    path(
        "fine-tuning/document-pairs/propose/",
        views.document_pairs_propose,
        name="document_pairs_propose",
    ),
    path(
        "fine-tuning/document-pairs/<int:pair_id>/",
        views.document_pair_review,
        name="document_pair_review",
    ),
    path("fine-tuning/<int:run_id>/", views.chat_tuning_run, name="chat_tuning_run"),
    path("fine-tuning/<int:run_id>/cancel/", views.chat_tuning_cancel, name="chat_tuning_cancel"),
    path("fine-tuning/<int:run_id>/deploy/", views.chat_tuning_deploy, name="chat_tuning_deploy"),
    path("calibration/preview/", views.calibration_preview, name="calibration_preview"),
    path("calibration/caution/", views.calibration_caution, name="calibration_caution"),
    path("calibration/thresholds/", views.calibration_thresholds, name="calibration_thresholds"),
    path("calibration/auto/", views.calibration_auto, name="calibration_auto"),
]
