from django.contrib import admin

from .models import Chunk, FaqEntry, Reembedding, Source


@admin.register(Source)
class SourceAdmin(admin.ModelAdmin):
    list_display = ["name", "bot", "kind", "status", "chunk_count", "embedding_model", "created_at"]
    list_filter = ["kind", "status", "embedding_model", "created_at"]
    search_fields = ["name", "url", "bot__name", "error"]
    autocomplete_fields = ["bot"]
    readonly_fields = ["created_at", "updated_at", "started_at", "finished_at"]


@admin.register(FaqEntry)
class FaqEntryAdmin(admin.ModelAdmin):
    list_display = ["question", "bot", "category", "source", "updated_at"]
    list_filter = ["category", "bot"]
    search_fields = ["question", "answer", "category"]
    raw_id_fields = ["source"]
    autocomplete_fields = ["bot"]


@admin.register(Chunk)
class ChunkAdmin(admin.ModelAdmin):
    list_display = ["__str__", "bot", "source", "position", "embedding_model"]
    list_filter = ["embedding_model", "bot"]
    search_fields = ["title", "text"]
    raw_id_fields = ["source", "faq"]
    autocomplete_fields = ["bot"]
    exclude = ["embedding", "search_vector"]


@admin.register(Reembedding)
class ReembeddingAdmin(admin.ModelAdmin):
    list_display = ["bot", "from_model", "to_model", "status", "progress_done", "created_at"]
    list_filter = ["status", "to_model"]
    search_fields = ["bot__name", "error"]
    autocomplete_fields = ["bot"]
    readonly_fields = ["created_at", "updated_at", "started_at", "finished_at"]
