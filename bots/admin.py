from django.contrib import admin

from .models import Bot
from .services import bot_update


@admin.register(Bot)
class BotAdmin(admin.ModelAdmin):
    list_display = ["name", "slug", "workspace", "mode", "provider", "created_at"]
    list_filter = ["mode", "provider", "created_at"]
    search_fields = ["name", "slug", "workspace__name"]
    autocomplete_fields = ["workspace"]
    prepopulated_fields = {"slug": ["name"]}
    readonly_fields = ["created_at", "updated_at"]

    def save_model(self, request, obj, form, change):
        if not change:
            return super().save_model(request, obj, form, change)
        # Through the service: only changed fields are written (workers write the model
        # fields), and a new embedding model starts the tracked switch.
        if form.changed_data:
            bot_update(bot=obj, **{name: form.cleaned_data[name] for name in form.changed_data})
