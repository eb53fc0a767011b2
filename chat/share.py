"""Dashboard "Share & embed": the public link, the widget snippet and its settings, API keys."""

from __future__ import annotations

from django import forms
from django.contrib.auth.decorators import login_required
from django.shortcuts import get_object_or_404, render
from django.urls import reverse
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views.decorators.http import require_http_methods, require_POST

from bots.access import get_bot_for_user
from bots.models import Bot

from .apikeys import api_key_create, api_key_revoke
from .models import ORIGIN_RE, Widget


class EmbedForm(forms.ModelForm):
    """The bot's widget settings (its Widget row)."""

    class Meta:
        model = Widget
        fields = ["allowed_origins", "colour", "position"]
        widgets = {
            "allowed_origins": forms.Textarea(
                attrs={
                    "rows": 3,
                    "placeholder": "https://www.example.com\nhttps://shop.example.com",
                }
            ),
            "colour": forms.TextInput(attrs={"type": "color"}),
        }
        labels = {"allowed_origins": gettext_lazy("Allowed sites")}

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.warnings: list[str] = []  # saved anyway; shown beside the form

    def clean_allowed_origins(self):
        lines = [
            line.strip().rstrip("/") for line in self.cleaned_data["allowed_origins"].splitlines()
        ]
        lines = [line for line in lines if line]
        bad = [line for line in lines if not ORIGIN_RE.match(line)]
        if bad:
            raise forms.ValidationError(
                _(
                    "Use one site per line as scheme and host only, like https://shop.example.com "
                    "(not a page address). Check: %(sites)s"
                )
                % {"sites": ", ".join(bad[:3])}
            )
        lines = list(dict.fromkeys(lines))
        self.warnings = origin_warnings(lines)
        return "\n".join(lines)


LOCAL_HOSTS = {"localhost", "127.0.0.1", "[::1]"}


def origin_warnings(origins: list[str]) -> list[str]:
    """What to tell the owner about allowed sites that are valid but probably not meant:
    plain http:// beyond this machine, and a wildcard over a whole top-level domain."""
    warnings = []
    for origin in origins:
        scheme, host = origin.split("://", 1)
        hostname = host.rsplit(":", 1)[0] if not host.endswith("]") else host
        if scheme == "http" and hostname not in LOCAL_HOSTS:
            warnings.append(
                _(
                    "%(origin)s is plain HTTP: anyone on the way can change that page, and "
                    "browsers block the chat's cookies inside it. Use https:// unless it is a "
                    "local test site."
                )
                % {"origin": origin}
            )
        if hostname.startswith("*.") and "." not in hostname[2:]:
            warnings.append(
                _(
                    "%(origin)s lets every site ending in .%(suffix)s embed the chat, not just "
                    "yours. Name your own domain, like %(scheme)s://*.example.com."
                )
                % {"origin": origin, "suffix": hostname[2:], "scheme": scheme}
            )
    return warnings


class ApiKeyForm(forms.Form):
    name = forms.CharField(
        max_length=80,
        label=gettext_lazy("Key name"),
        widget=forms.TextInput(attrs={"placeholder": gettext_lazy("e.g. Website backend")}),
    )


def _context(request, bot: Bot, **extra) -> dict:
    site = request.build_absolute_uri("/").rstrip("/")
    return {
        "bot": bot,
        "chat_url": site + reverse("chat:page", args=[bot.slug]),
        "widget_url": site + reverse("chat:widget_js"),
        "api_base": site + "/v1",
        "keys": bot.api_keys.all(),
        "form": EmbedForm(instance=Widget.of(bot)),
        "key_form": ApiKeyForm(),
        **extra,
    }


@login_required
@require_http_methods(["GET", "POST"])
def bot_share(request, bot_id: int):
    bot = get_bot_for_user(request.user, bot_id)
    extra = {}
    if request.method == "POST":
        form = EmbedForm(request.POST, instance=Widget.of(bot))
        if form.is_valid():
            form.save()
            extra.update(saved=True, origin_warnings=form.warnings)
            form = EmbedForm(instance=form.instance)
        extra["form"] = form
    context = _context(request, bot, **extra)
    status = 422 if request.method == "POST" and "saved" not in extra else 200
    template = "chat/share.html#embed" if request.htmx else "chat/share.html"
    return render(request, template, context, status=status)


@login_required
@require_POST
def bot_api_key_create(request, bot_id: int):
    bot = get_bot_for_user(request.user, bot_id)
    form = ApiKeyForm(request.POST)
    extra = {"key_form": form}
    status = 422
    if form.is_valid():
        key, raw = api_key_create(bot=bot, name=form.cleaned_data["name"])
        # The raw key exists only in this response: it is never stored or shown again.
        extra = {"new_key": raw, "new_key_row": key}
        status = 200
    context = _context(request, bot, **extra)
    template = "chat/share.html#keys" if request.htmx else "chat/share.html"
    return render(request, template, context, status=status)


@login_required
@require_POST
def bot_api_key_revoke(request, bot_id: int, key_id: int):
    bot = get_bot_for_user(request.user, bot_id)
    key = get_object_or_404(bot.api_keys, pk=key_id)
    api_key_revoke(key=key)
    context = _context(request, bot, revoked=key)
    template = "chat/share.html#keys" if request.htmx else "chat/share.html"
    return render(request, template, context)
