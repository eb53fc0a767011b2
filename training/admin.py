from django.contrib import admin

from .models import RetrievalTuning


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
