from django.urls import path

from . import views

app_name = "training"

urlpatterns = [
    path("retrieval/", views.tuning_panel, name="tuning_panel"),
    path("retrieval/start/", views.tuning_start, name="tuning_start"),
    path("retrieval/off/", views.tuning_off, name="tuning_off"),
]
