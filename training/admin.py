from django.contrib import admin

from .models import ChatTuning, DocumentPair, RetrievalTuning


@admin.register(RetrievalTuning)
class RetrievalTuningAdmin(admin.ModelAdmin):
    list_display = [
        "__str__",
        "bot",
        "status",
        "stage",
        "entries",
        "phrasings",
        "train_seconds",
        "created_at",
    ]
    list_filter = ["status", "created_at"]
    search_fields = ["bot__name", "model_name", "message"]
    autocomplete_fields = ["bot"]
    readonly_fields = [f.name for f in RetrievalTuning._meta.fields if f.name not in ("id", "bot")]


@admin.register(ChatTuning)
class ChatTuningAdmin(admin.ModelAdmin):
    list_display = ["__str__", "bot", "backend", "mode", "status", "examples", "created_at"]
    list_filter = ["status", "backend", "mode", "created_at"]
    search_fields = ["bot__name", "model_name", "fine_tuned_model", "provider_job_id", "error"]
    autocomplete_fields = ["bot"]
    readonly_fields = [f.name for f in ChatTuning._meta.fields if f.name not in ("id", "bot")]


@admin.register(DocumentPair)
class DocumentPairAdmin(admin.ModelAdmin):
    list_display = ["question", "bot", "status", "heading", "updated_at"]
    list_filter = ["status"]
    raw_id_fields = ["bot", "chunk"]
