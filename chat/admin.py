from django.contrib import admin

from .models import ApiKey, Conversation, Message, Widget


class MessageInline(admin.TabularInline):
    model = Message
    extra = 0
    fields = ["role", "text", "path", "score", "latency_ms", "rating", "created_at"]
    readonly_fields = fields
    can_delete = False


@admin.register(Conversation)
class ConversationAdmin(admin.ModelAdmin):
    list_display = ["public_id", "bot", "channel", "message_count", "handoff_email", "created_at"]
    list_filter = ["channel", "bot__workspace", "created_at"]
    search_fields = ["public_id", "handoff_email", "messages__text", "bot__name"]
    autocomplete_fields = ["bot"]
    inlines = [MessageInline]

    @admin.display(description="Messages")
    def message_count(self, obj):
        return obj.messages.count()


@admin.register(Message)
class MessageAdmin(admin.ModelAdmin):
    list_display = ["short_text", "role", "path", "score", "latency_ms", "rating", "created_at"]
    list_filter = ["role", "path", "rating", "created_at"]
    search_fields = ["text"]
    raw_id_fields = ["conversation"]

    @admin.display(description="Text")
    def short_text(self, obj):
        return obj.text[:80]


@admin.register(ApiKey)
class ApiKeyAdmin(admin.ModelAdmin):
    # Keys are created (and shown once) on the bot's Share & embed page; the admin only audits
    # and revokes them, so nothing here can reveal or forge one.
    list_display = ["name", "prefix", "bot", "created_at", "last_used_at", "revoked_at"]
    list_filter = ["revoked_at", "bot__workspace"]
    search_fields = ["name", "prefix", "bot__name"]
    fields = ["bot", "name", "prefix", "created_at", "last_used_at", "revoked_at"]
    readonly_fields = ["bot", "prefix", "created_at", "last_used_at"]

    def has_add_permission(self, request):
        return False


@admin.register(Widget)
class WidgetAdmin(admin.ModelAdmin):
    # Each bot's Share & embed settings; the owner edits them on that page, staff read them here.
    list_display = ["bot", "colour", "position", "allowed_origins"]
    list_filter = ["position", "bot__workspace"]
    search_fields = ["bot__name", "bot__slug", "allowed_origins"]
    fields = ["bot", "allowed_origins", "colour", "position"]
    readonly_fields = ["bot"]

    def has_add_permission(self, request):
        return False  # every bot gets its row when it is created
