from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.utils.translation import gettext as _
from django.views.decorators.http import require_http_methods, require_POST

from accounts.access import current_workspace, is_owner, workspace_required

from . import languages, services
from .access import bots_for_user, get_bot_for_user
from .forms import BotFieldForm, BotForm


@login_required
@workspace_required
def bot_list(request):
    workspace = current_workspace(request)
    bots = bots_for_user(request.user).filter(workspace=workspace).select_related("workspace")
    return render(request, "bots/list.html", {"bots": bots, "workspace": workspace})


@login_required
@workspace_required
@require_http_methods(["GET", "POST"])
def bot_create(request):
    workspace = current_workspace(request)
    form = BotForm(request.POST or None, initial={"slug": ""})
    form.fields["slug"].required = False
    if request.method == "POST" and form.is_valid():
        data = {k: v for k, v in form.cleaned_data.items() if v not in ("", None)}
        bot = services.bot_create(workspace=workspace, **data)
        messages.success(
            request, _("“%(bot)s” is ready. Teach it by adding knowledge.") % {"bot": bot.name}
        )
        return redirect("bots:detail", bot_id=bot.pk)
    return render(request, "bots/form.html", {"form": form, "title": _("Create a bot")})


@login_required
def bot_detail(request, bot_id: int):
    bot = get_bot_for_user(request.user, bot_id)
    context = {
        "bot": bot,
        "inline_fields": BotFieldForm.INLINE_FIELDS,
        "is_owner": is_owner(request.user, bot.workspace),
    }
    return render(request, "bots/detail.html", context)


@login_required
@require_http_methods(["GET", "POST"])
def bot_edit(request, bot_id: int):
    bot = get_bot_for_user(request.user, bot_id)
    form = BotForm(request.POST or None, instance=bot)
    if request.method == "POST" and form.is_valid():
        bot = services.bot_update(bot=bot, **form.cleaned_data)
        messages.success(request, _("Settings saved."))
        if bot.embedding_switch_started and {"provider", "embedding_model"} & set(
            form.changed_data
        ):
            messages.info(
                request,
                _(
                    "The embedding model changed: the bot's knowledge is being re-embedded. "
                    "It keeps answering with the previous model until that is done."
                ),
            )
        return redirect("bots:detail", bot_id=bot.pk)
    return render(
        request,
        "bots/form.html",
        {"form": form, "bot": bot, "title": _("Settings: %(bot)s") % {"bot": bot.name}},
    )


@login_required
@require_http_methods(["GET", "POST"])
def bot_field(request, bot_id: int, field: str):
    """Inline edit of one text field (htmx): GET ?edit=1 shows the input, POST saves it."""
    bot = get_bot_for_user(request.user, bot_id)
    if field not in BotFieldForm.INLINE_FIELDS:
        return HttpResponse(status=404)
    context = {"bot": bot, "field": field, "label": bot._meta.get_field(field).verbose_name}
    if request.method == "POST":
        value = request.POST.get("value", "").strip()
        try:
            services.bot_update(bot=bot, **{field: value})
        except ValidationError as exc:
            bot.refresh_from_db()
            context.update(
                editing=True, value=value, errors=exc.message_dict.get(field, exc.messages)
            )
            return render(request, "bots/detail.html#field", context, status=422)
        context["value"] = getattr(bot, field)
        return render(request, "bots/detail.html#field", context)
    context.update(editing=request.GET.get("edit") == "1", value=getattr(bot, field))
    if not request.htmx:
        return redirect("bots:detail", bot_id=bot.pk)
    return render(request, "bots/detail.html#field", context)


@login_required
@require_POST
def bot_language(request, bot_id: int):
    """Switch the bot's language (the Knowledge tab offers it when the knowledge is written in
    another one); the bot re-embeds its knowledge with that language's model meanwhile."""
    bot = get_bot_for_user(request.user, bot_id)
    code = request.POST.get("language", "")
    if code not in languages.LANGUAGES:
        return HttpResponse(_("Choose one of the bot languages."), status=400)
    if code != bot.language:
        services.bot_update(bot=bot, language=code)
        messages.success(
            request,
            _(
                "%(bot)s now speaks %(language)s. It answers as before while it re-reads its knowledge."
            )
            % {"bot": bot.name, "language": languages.LANGUAGES[code].name},
        )
    target = request.POST.get("next", "")
    if not url_has_allowed_host_and_scheme(target, {request.get_host()}, request.is_secure()):
        target = reverse("bots:detail", args=[bot.pk])
    return redirect(target)


@login_required
@require_POST
def bot_delete(request, bot_id: int):
    bot = get_bot_for_user(request.user, bot_id)
    if not is_owner(request.user, bot.workspace):
        raise PermissionDenied(_("Only the workspace's owners can delete a bot."))
    name = bot.name
    services.bot_delete(bot=bot)
    messages.success(
        request, _("Deleted “%(bot)s” and all its knowledge and conversations.") % {"bot": name}
    )
    return redirect("bots:list")


@login_required
def system_status(request):
    """Worker heartbeat fragment shown in the dashboard footer (polled by htmx)."""
    from .tasks import heartbeat_status

    return render(request, "bots/_system_status.html", {"status": heartbeat_status()})
