"""Knowledge dashboard: sources (upload, live progress, re-ingest, delete) and the FAQ editor.

One URL serves a page and its htmx fragment; every lookup goes through the access helpers.
"""

from urllib.parse import urlencode

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.core.paginator import Paginator
from django.db.models import Q
from django.http import HttpResponse
from django.shortcuts import redirect, render
from django.utils.translation import gettext as _
from django.utils.translation import ngettext
from django.views.decorators.http import require_GET, require_http_methods, require_POST
from django_htmx.http import HttpResponseStopPolling, trigger_client_event

from bots.access import get_bot_for_user

from . import reembedding, selectors, services
from .access import get_faq_entry_for_user, get_source_for_user
from .forms import FaqEntryForm, SourceForm
from .models import FaqEntry, Reembedding, Source

PAGE = "knowledge/knowledge.html"
FAQ_LIMIT = 200
CHANGED = "knowledge-changed"  # htmx event: the sources table reloads itself


def _faq_context(bot, q: str, source_id: str = "") -> dict:
    """Every FAQ entry the bot answers from, hand-written or imported (CSV, JSON, web page),
    optionally from one source only, searched by `q`."""
    entries = FaqEntry.objects.filter(bot=bot).select_related("source")
    sources = [
        (pk, _("FAQ editor") if kind == Source.Kind.MANUAL else name)
        for pk, name, kind in Source.objects.filter(bot=bot, faq_entries__isnull=False)
        .distinct()
        .order_by("name")
        .values_list("pk", "name", "kind")
    ]
    source_pk = int(source_id) if str(source_id).isdigit() else None
    if source_pk:
        entries = entries.filter(source_id=source_pk)
    total = entries.count()
    if q:
        entries = entries.filter(
            Q(question__icontains=q)
            | Q(answer__icontains=q)
            | Q(category__icontains=q)
            | Q(alternate_questions__icontains=q)
        )
    matched = entries.count() if q else total
    return {
        "entries": entries.order_by("-updated_at", "-pk")[:FAQ_LIMIT],
        "faq_total": total,
        "faq_matched": matched,
        "faq_limit": FAQ_LIMIT,
        "q": q,
        "faq_sources": sources if len(sources) > 1 else [],
        "faq_source": source_pk,
    }


def _page_context(bot, **extra) -> dict:
    context = {
        "bot": bot,
        "sources": bot.sources.order_by("-created_at"),
        "source_form": SourceForm(),
        "faq_form": FaqEntryForm(),
        **_faq_context(bot, ""),
        "reembedding": reembedding.reembedding_to_show(bot),
        "language_notice": selectors.language_notice(bot),
    }
    context.update(extra)
    return context


@login_required
@require_GET
def knowledge_page(request, bot_id: int):
    bot = get_bot_for_user(request.user, bot_id)
    if request.htmx:
        return render(
            request,
            f"{PAGE}#sources-table",
            {"bot": bot, "sources": bot.sources.order_by("-created_at")},
        )
    q = request.GET.get("q", "").strip()
    return render(
        request, PAGE, _page_context(bot, **_faq_context(bot, q, request.GET.get("source", "")))
    )


CHUNKS_PER_PAGE = 50


@login_required
@require_GET
def source_chunks(request, bot_id: int, source_id: int):
    """What the bot answers from in one source: its chunks, in order, as they were stored."""
    bot, source = get_source_for_user(request.user, bot_id, source_id)
    chunks = source.chunks.order_by("position", "pk").only(
        "pk", "position", "title", "text", "faq_id", "embedding_model"
    )
    page = Paginator(chunks, CHUNKS_PER_PAGE).get_page(request.GET.get("page"))
    return render(request, "knowledge/chunks.html", {"bot": bot, "source": source, "page": page})


@login_required
@require_POST
def source_add(request, bot_id: int):
    bot = get_bot_for_user(request.user, bot_id)
    form = SourceForm(request.POST, request.FILES)
    if form.is_valid():
        try:
            source = services.source_add(
                bot=bot, upload=form.cleaned_data["file"], url=form.cleaned_data["url"]
            )
        except ValidationError as exc:
            form.add_error(None, exc)
        else:
            if request.htmx:
                context = {
                    "bot": bot,
                    "source_form": SourceForm(),
                    "sources": bot.sources.order_by("-created_at"),
                }
                return render(request, f"{PAGE}#sources-panel", context)
            messages.success(
                request, _("“%(name)s” was added and is being read.") % {"name": source.name}
            )
            return redirect("knowledge:page", bot_id=bot.pk)
    if request.htmx:  # htmx swaps 2xx responses only
        context = {"bot": bot, "source_form": form, "sources": bot.sources.order_by("-created_at")}
        return render(request, f"{PAGE}#sources-panel", context)
    return render(request, PAGE, _page_context(bot, source_form=form), status=422)


@login_required
@require_GET
def source_row(request, bot_id: int, source_id: int):
    """The polled row: live progress while working, 286 (stop polling) once final."""
    bot, source = get_source_for_user(request.user, bot_id, source_id)
    if not request.htmx:
        return redirect("knowledge:page", bot_id=bot.pk)
    response = render(request, f"{PAGE}#source-row", {"bot": bot, "source": source})
    if source.is_final:
        return HttpResponseStopPolling(response.content)
    return response


@login_required
@require_POST
def source_reingest(request, bot_id: int, source_id: int):
    bot, source = get_source_for_user(request.user, bot_id, source_id)
    source = services.source_reingest(source=source)
    if request.htmx:
        return render(request, f"{PAGE}#source-row", {"bot": bot, "source": source})
    messages.success(request, _("“%(name)s” will be read again.") % {"name": source.name})
    return redirect("knowledge:page", bot_id=bot.pk)


@login_required
@require_POST
def source_delete(request, bot_id: int, source_id: int):
    bot, source = get_source_for_user(request.user, bot_id, source_id)
    name = source.name
    services.source_delete(source=source)
    if request.htmx:
        return HttpResponse("")
    messages.success(
        request, _("Deleted “%(name)s” and everything learnt from it.") % {"name": name}
    )
    return redirect("knowledge:page", bot_id=bot.pk)


@login_required
@require_GET
def faq_list(request, bot_id: int):
    bot = get_bot_for_user(request.user, bot_id)
    q = request.GET.get("q", "").strip()
    source = request.GET.get("source", "")
    if not request.htmx:
        url = redirect("knowledge:page", bot_id=bot.pk).url
        query = urlencode({k: v for k, v in (("q", q), ("source", source)) if v})
        return redirect(f"{url}?{query}#faq" if query else f"{url}#faq")
    return render(request, f"{PAGE}#faq-table", {"bot": bot, **_faq_context(bot, q, source)})


def _changed(response):
    return trigger_client_event(response, CHANGED)


@login_required
@require_POST
def faq_create(request, bot_id: int):
    bot = get_bot_for_user(request.user, bot_id)
    form = FaqEntryForm(request.POST)
    if form.is_valid():
        try:
            entry = services.faq_entry_create(bot=bot, **form.service_kwargs())
        except ValidationError as exc:
            form.add_error(None, exc)
        else:
            if request.htmx:
                context = {"bot": bot, "faq_form": FaqEntryForm(), **_faq_context(bot, "")}
                return _changed(render(request, f"{PAGE}#faq-panel", context))
            messages.success(request, _("Added “%(question)s”.") % {"question": entry.question})
            return redirect("knowledge:page", bot_id=bot.pk)
    if request.htmx:
        return render(
            request, f"{PAGE}#faq-panel", {"bot": bot, "faq_form": form, **_faq_context(bot, "")}
        )
    return render(request, PAGE, _page_context(bot, faq_form=form), status=422)


@login_required
@require_GET
def faq_row(request, bot_id: int, entry_id: int):
    bot, entry = get_faq_entry_for_user(request.user, bot_id, entry_id)
    if not request.htmx:
        return redirect("knowledge:page", bot_id=bot.pk)
    return render(request, f"{PAGE}#faq-row", {"bot": bot, "entry": entry})


@login_required
@require_http_methods(["GET", "POST"])
def faq_edit(request, bot_id: int, entry_id: int):
    bot, entry = get_faq_entry_for_user(request.user, bot_id, entry_id)
    form = FaqEntryForm(request.POST or None, instance=entry, prefix=f"e{entry.pk}")
    template = f"{PAGE}#faq-edit-row" if request.htmx else "knowledge/faq_edit.html"
    if request.method == "POST" and form.is_valid():
        try:
            entry = services.faq_entry_update(
                entry=FaqEntry.objects.get(pk=entry.pk), **form.service_kwargs()
            )
        except ValidationError as exc:
            form.add_error(None, exc)
        else:
            if request.htmx:
                return _changed(render(request, f"{PAGE}#faq-row", {"bot": bot, "entry": entry}))
            messages.success(request, _("Saved."))
            return redirect("knowledge:page", bot_id=bot.pk)
    status = 422 if request.method == "POST" and not request.htmx else 200  # htmx swaps 2xx only
    return render(request, template, {"bot": bot, "entry": entry, "form": form}, status=status)


@login_required
@require_POST
def faq_delete(request, bot_id: int, entry_id: int):
    bot, entry = get_faq_entry_for_user(request.user, bot_id, entry_id)
    services.faq_entries_delete(bot=bot, ids=[entry.pk])
    if request.htmx:
        return _changed(HttpResponse(""))
    messages.success(request, _("Deleted the entry."))
    return redirect("knowledge:page", bot_id=bot.pk)


@login_required
@require_POST
def faq_bulk_delete(request, bot_id: int):
    bot = get_bot_for_user(request.user, bot_id)
    ids = [int(i) for i in request.POST.getlist("ids") if i.isdigit()]
    count = services.faq_entries_delete(bot=bot, ids=ids) if ids else 0
    if request.htmx:
        q = request.POST.get("q", "").strip()
        return _changed(
            render(
                request, f"{PAGE}#faq-table", {"bot": bot, "deleted": count, **_faq_context(bot, q)}
            )
        )
    messages.success(
        request,
        ngettext("Deleted %(n)s entry.", "Deleted %(n)s entries.", count) % {"n": count},
    )
    return redirect("knowledge:page", bot_id=bot.pk)


@login_required
@require_GET
def reembedding_panel(request, bot_id: int):
    """The polled embedding-model switch card; 286 (stop polling) once the switch has ended."""
    bot = get_bot_for_user(request.user, bot_id)
    if not request.htmx:
        return redirect("knowledge:page", bot_id=bot.pk)
    job = Reembedding.objects.filter(bot=bot).first()
    context = {"bot": bot, "reembedding": job}
    response = render(request, f"{PAGE}#reembed-panel", context)
    if job is None or not job.is_active:
        return HttpResponseStopPolling(response.content)
    return response


@login_required
@require_POST
def reembedding_retry(request, bot_id: int):
    bot = get_bot_for_user(request.user, bot_id)
    if reembedding.reembedding_retry(bot=bot) is None:
        messages.info(request, _("There is no failed switch of embedding model to retry."))
    bot.refresh_from_db()
    if request.htmx:
        context = {"bot": bot, "reembedding": Reembedding.objects.filter(bot=bot).first()}
        return render(request, f"{PAGE}#reembed-panel", context)
    return redirect("knowledge:page", bot_id=bot.pk)
