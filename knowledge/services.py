"""Writes over knowledge: adding and deleting sources, the FAQ editor, and the ingestion run
with its task and recovery.

Ingestion (`source_ingest`) runs in a Celery worker: parse -> chunk -> embed in batches (outside
any transaction) -> one `atomic()` block replaces the source's chunks and marks it READY (the
steps are in knowledge.ingest_steps; the per-bot limits they enforce in knowledge.limits).

A run owns its source through a claim: a conditional UPDATE PENDING -> PROCESSING that stamps
`started_at`. That stamp is the fencing token: progress updates and the final replace only apply
while the row still carries it, so a duplicate delivery, a recovered run or a newer re-ingest
request can never leave two sets of chunks.

The ingestion task is defined here, beside the service it runs (as pretix does), so queueing a
source imports nothing back; knowledge.tasks imports it for the worker. A model service that is
down (ProviderUnavailable) is retried with Celery's exponential back-off (10 s, 20 s, 40 s ...
with jitter, at most 10 minutes apart); after the last retry the job fails with a readable reason
(askhandle.jobs.GiveUpTask).
"""

from __future__ import annotations

import io
import json
import logging
import time
from collections.abc import Iterable
from datetime import timedelta

from celery import shared_task
from celery.exceptions import SoftTimeLimitExceeded
from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.files.base import ContentFile
from django.db import InterfaceError, OperationalError, transaction
from django.db.models import F
from django.utils import timezone, translation
from django.utils.translation import gettext as _
from django.utils.translation import gettext_noop

import providers
from askhandle.jobs import GiveUpTask, Superseded
from bots.models import Bot

from . import fetching, ingest_steps, parsing, serving
from .ingest_steps import SOURCES, ModelChanged, YieldTurn
from .limits import check_size_limits, check_source_limit, read_upload
from .models import FaqEntry, Source
from .resume import Staged
from .signals import faq_changed_on_commit

log = logging.getLogger(__name__)

MAX_ATTEMPTS = 3  # claims of one run (worker lost, recovered) before it is declared failed
MANUAL_NAME = "FAQ editor"
FILE_KINDS = (
    Source.Kind.CSV,
    Source.Kind.JSON,
    Source.Kind.MARKDOWN,
    Source.Kind.TEXT,
    Source.Kind.PDF,
    Source.Kind.DOCX,
)


# The ingestion's and the re-embedding's tasks (knowledge.reembedding) retry these.
RETRY = {
    "base": GiveUpTask,
    "bind": True,
    "acks_late": True,
    # The database went away mid-run (restart, failover): retried with the same back-off; the
    # run's claim is taken over once its heartbeat counts as dead, resuming from staged batches.
    "autoretry_for": (providers.ProviderUnavailable, OperationalError, InterfaceError),
    "retry_backoff": 10,
    "retry_backoff_max": 600,
    "max_retries": 5,
}


# --- Adding sources ------------------------------------------------------------------------------


def manual_source(*, bot: Bot) -> Source:
    """The bot's one FAQ-editor source, created on first use."""
    with transaction.atomic():
        Bot.objects.select_for_update().filter(pk=bot.pk).first()  # serialise the get-or-create
        source, _ = Source.objects.get_or_create(
            bot=bot,
            kind=Source.Kind.MANUAL,
            defaults={"name": MANUAL_NAME, "status": Source.Status.READY},
        )
    return source


def source_add(
    *, bot: Bot, kind=None, name=None, upload=None, url=None, enqueue: bool = True
) -> Source:
    """Validate and save a new source as PENDING, then enqueue its ingestion after commit.

    Raises ValidationError with a message for the owner (empty, too large, unsupported type,
    private URL...). Cheap checks happen here; parsing errors surface as a FAILED source.
    """
    if kind == Source.Kind.MANUAL:
        return manual_source(bot=bot)
    check_source_limit(bot)
    if url:
        fetching.check_url(url)  # resolves and refuses private addresses; does not connect
        source = Source(bot=bot, kind=Source.Kind.URL, name=(name or url)[:255], url=url.strip())
        source.full_clean(exclude=["file"])
    elif upload is not None:
        data = read_upload(upload)
        filename = name or getattr(upload, "name", "") or "upload"
        detected = _detect_kind(data, filename, kind)
        source = Source(bot=bot, kind=detected, name=filename[:255])
        source.file.save(filename.rsplit("/", 1)[-1][:100], ContentFile(data), save=False)
    else:
        raise ValidationError(_("Choose a file to upload or enter a web address."))
    source.notes_language = _reader_language()
    try:
        with transaction.atomic():
            # Two uploads at once must not both pass the source limit: count under the bot's lock.
            Bot.objects.select_for_update().filter(pk=bot.pk).first()
            check_source_limit(bot)
            source.save()
    except BaseException:
        if source.file:
            source.file.storage.delete(source.file.name)
        raise
    if enqueue:
        _enqueue(source.pk)
    return source


def _detect_kind(data: bytes, filename: str, kind: str | None) -> str:
    family = parsing.sniff_family(data)
    if family == parsing.PDF:
        _check_pdf_opens(data)
        return Source.Kind.PDF
    if family == parsing.DOCX:
        return Source.Kind.DOCX
    if kind in (Source.Kind.CSV, Source.Kind.JSON, Source.Kind.MARKDOWN, Source.Kind.TEXT):
        return kind
    return parsing.text_kind(parsing.decode_text(data), filename)


def _check_pdf_opens(data: bytes) -> None:
    import pypdf  # ~90 ms to import: loaded when a PDF arrives, as in documents.parse_pdf

    try:
        reader = pypdf.PdfReader(io.BytesIO(data))
        encrypted = reader.is_encrypted and not reader.decrypt("")
    except Exception as exc:  # pypdf raises many types for damaged files
        raise ValidationError(_("This PDF cannot be read; it may be damaged.")) from exc
    if encrypted:
        raise ValidationError(
            _("This PDF is password-protected. Remove the password and upload it again.")
        )


def _enqueue(source_id: int) -> None:
    SOURCES.send_on_commit(ingest_source, source_id)


def source_reingest(*, source: Source) -> Source:
    """Queue a fresh ingestion; the current chunks keep answering until it succeeds.

    A run in progress is superseded (its claim no longer matches) and drops its work.
    """
    _request_ingest(source.pk, notes_language=_reader_language())
    _enqueue(source.pk)
    source.refresh_from_db()
    return source


def source_requeue(*, source_id: int) -> None:
    """Ingest a source again (after this transaction commits), superseding any run in progress."""
    _request_ingest(source_id)
    _enqueue(source_id)


def _request_ingest(source_id: int, *, notes_language: str | None = None) -> None:
    """Back to PENDING; `notes_language` (an owner's request) is what the worker writes its
    notes in, None (the system's own requeue) keeps the last one."""
    language = {} if notes_language is None else {"notes_language": notes_language}
    Source.objects.filter(pk=source_id).update(
        status=Source.Status.PENDING,
        attempts=0,
        stage="",
        progress_done=0,
        progress_total=0,
        updated_at=timezone.now(),
        **language,
    )


def _reader_language() -> str:
    """The dashboard language of the request being served (settings.LANGUAGE_CODE outside one)."""
    return translation.get_language() or ""


def source_delete(*, source: Source) -> None:
    """Delete a source with its FAQ entries and chunks (and the stored file, after commit:
    knowledge.receivers, which also covers a source deleted with its bot or workspace)."""
    with transaction.atomic():
        if source.faq_entries.exists():
            faq_changed_on_commit(source.bot_id, f"{source.name} deleted")
        source.delete()


# --- The FAQ editor --------------------------------------------------------------------------------


def _clean_alternates(alternate_questions: Iterable[str]) -> list[str]:
    seen, out = set(), []
    for text in alternate_questions:
        text = " ".join(str(text).split())
        if text and text.lower() not in seen:
            seen.add(text.lower())
            out.append(text)
    return out


def faq_entry_create(
    *,
    bot: Bot,
    question: str,
    answer: str,
    category: str = "",
    url: str = "",
    alternate_questions=(),
) -> FaqEntry:
    """Add an entry to the bot's FAQ editor and re-ingest the editor's source (via the task)."""
    source = manual_source(bot=bot)
    with transaction.atomic():
        # The source row first: an ingestion holding it must finish before entries change.
        _request_ingest(source.pk, notes_language=_reader_language())
        entry = FaqEntry(bot=bot, source=source)
        _save_entry(entry, question, answer, category, url, alternate_questions)
        _enqueue(source.pk)
    return entry


def _save_entry(entry: FaqEntry, question, answer, category, url, alternate_questions) -> None:
    """The editor's fields, trimmed, validated and saved (create and update alike)."""
    entry.question, entry.answer = question.strip(), answer.strip()
    entry.category, entry.url = category.strip(), url.strip()
    entry.alternate_questions = _clean_alternates(alternate_questions)
    entry.full_clean()
    entry.save()


def faq_entry_update(
    *,
    entry: FaqEntry,
    question: str,
    answer: str,
    category: str = "",
    url: str = "",
    alternate_questions=(),
) -> FaqEntry:
    """Edit any entry of the bot, hand-written or imported, and re-ingest its source. An imported
    source then keeps its entries from the database (Source.entries_edited): re-ingesting it
    keeps the edit instead of reading the file again."""
    with transaction.atomic():
        _request_ingest(entry.source_id, notes_language=_reader_language())
        _mark_edited(entry.source_id)
        _save_entry(entry, question, answer, category, url, alternate_questions)
        _enqueue(entry.source_id)
    return entry


def faq_entries_delete(*, bot: Bot, ids: Iterable[int]) -> int:
    """Delete entries of this bot, from any of its sources (other bots' ids are ignored), and
    re-ingest each source they came from; returns how many were deleted."""
    ids = list(ids)
    source_ids = sorted(
        set(FaqEntry.objects.filter(bot=bot, pk__in=ids).values_list("source_id", flat=True))
    )
    deleted = 0
    with transaction.atomic():
        for source_id in source_ids:  # in id order: two deletions never wait on each other
            _request_ingest(source_id, notes_language=_reader_language())
            _mark_edited(source_id)
        _total, per_model = FaqEntry.objects.filter(
            bot=bot, source_id__in=source_ids, pk__in=ids
        ).delete()
        deleted = per_model.get(FaqEntry._meta.label, 0)
        for source_id in source_ids:
            _enqueue(source_id)
    return deleted


def _mark_edited(source_id: int) -> None:
    Source.objects.filter(pk=source_id).exclude(kind=Source.Kind.MANUAL).update(entries_edited=True)


def faq_entries_import(*, bot: Bot, name: str, entries: list[dict], enqueue: bool = True) -> Source:
    """A JSON-kind source built from dicts (question, answer, optional category, url,
    alternate_questions / example_questions, faq_id...). Goes through the real ingestion."""
    lines = "\n".join(json.dumps(entry, ensure_ascii=False) for entry in entries)
    upload = ContentFile(lines.encode("utf-8"), name=f"{name}.jsonl")
    return source_add(bot=bot, kind=Source.Kind.JSON, name=name, upload=upload, enqueue=enqueue)


# --- Ingestion -------------------------------------------------------------------------------------


def _claim(source_id: int):
    """PENDING (or PROCESSING with no heartbeat for DEAD_AFTER) -> PROCESSING; returns the token
    or None. A delivery that finds a live run looks again once that run would count as dead."""
    return SOURCES.claim(source_id, recheck=ingest_source, stage=gettext_noop("parsing"))


def source_ingest(*, source_id: int, slice_seconds: float = 0) -> Source | None:
    """Parse, chunk, embed and store one source. Safe to call twice: a second call while the first
    runs (or after it finished) does nothing. Returns the source as it ends (None if deleted).

    With `slice_seconds` (the task passes KNOWLEDGE_INGEST_SLICE_SECONDS), a run that has embedded
    that long with more to go stages what it has, puts the source back to PENDING and sends its
    task again: it goes to the back of the `ingest` queue, so another tenant's small edit queued
    meanwhile runs before the next slice of a large file (finding 5). The next slice re-reads
    the file and embeds only what is not staged yet (knowledge.resume).

    ProviderUnavailable is re-raised after putting the source back to PENDING (the task retries).
    Other errors mark the source FAILED; its previous chunks stay until a successful replace.
    """
    token = _claim(source_id)
    if token is None:
        return Source.objects.filter(pk=source_id).first()
    source = Source.objects.select_related("bot", "bot__embedding_state").get(pk=source_id)
    # Parse errors, skipped rows and limits are written for the owner who asked for this run.
    with translation.override(source.notes_language or settings.LANGUAGE_CODE):
        _ingest_and_record(source, token, slice_seconds)
    return Source.objects.filter(pk=source_id).first()


def _ingest_and_record(source: Source, token, slice_seconds: float) -> None:
    """source_ingest's run and what each way it can end leaves on the row."""
    source_id = source.pk
    try:
        with SOURCES.heartbeat(source_id, token):
            _ingest(source, token, slice_seconds=slice_seconds)
    except YieldTurn:
        # A slice is not an attempt: only crashes count towards MAX_ATTEMPTS.
        if SOURCES.owned(source_id, token).update(
            status=Source.Status.PENDING,
            attempts=F("attempts") - 1,
            stage=gettext_noop("waiting its turn"),
            updated_at=timezone.now(),
        ):
            _enqueue(source_id)
    except Superseded:
        log.info("Ingestion of source %s superseded; its work was dropped.", source_id)
    except ModelChanged:
        log.info("Source %s: the bot's embedding model changed while embedding; again.", source_id)
        if SOURCES.owned(source_id, token).exists():
            source_requeue(source_id=source_id)
    except providers.ProviderUnavailable:
        SOURCES.owned(source_id, token).update(
            status=Source.Status.PENDING,
            stage=gettext_noop("waiting for the model service"),
            updated_at=timezone.now(),
        )
        raise
    except (OperationalError, InterfaceError):
        # The database went away (restart, failover): nothing can be recorded now. The task
        # retries; its claim is taken over once the heartbeat counts as dead.
        log.warning("Ingestion of source %s lost the database; the task retries.", source_id)
        raise
    except (ValidationError, providers.ProviderError) as exc:
        _fail(source_id, token, _message(exc))
    except SoftTimeLimitExceeded:
        _fail(source_id, token, _("Ingestion took too long and was stopped; try a smaller file."))
    except Exception as exc:
        log.exception("Ingestion of source %s failed", source_id)
        _fail(
            source_id,
            token,
            _("Unexpected error while reading this source (%(error)s).")
            % {"error": exc.__class__.__name__},
        )
        raise


def _ingest(source: Source, token, *, slice_seconds: float = 0) -> None:
    """The steps of one run, timed for the log."""
    started = time.perf_counter()
    parsed, manual_entries = ingest_steps.load_source(source)
    parsed_at = time.perf_counter()
    model = serving.embedding_model_for_bot(source.bot)
    specs = ingest_steps.chunk_specs(parsed, model)
    check_size_limits(source, faq_count=len(parsed.faqs), chunk_count=len(specs))
    vectors = ingest_steps.embed_specs(source, token, specs, model, slice_seconds=slice_seconds)
    embedded_at = time.perf_counter()
    SOURCES.progress(source.pk, token, stage=gettext_noop("saving"))
    ingest_steps.save_chunks(source, token, parsed, manual_entries, specs, vectors, model)
    log.info(
        "Source %s: %d chunks; read %.2f s, embedded %.2f s, saved %.2f s",
        source.pk,
        len(specs),
        parsed_at - started,
        embedded_at - parsed_at,
        time.perf_counter() - embedded_at,
    )


def _source_give_up(source_id: int, *, error: str) -> None:
    source_fail(source_id=source_id, error=error)


@shared_task(name="knowledge.tasks.ingest_source", **RETRY, give_up=staticmethod(_source_give_up))
def ingest_source(self, source_id: int) -> None:
    source_ingest(source_id=source_id, slice_seconds=settings.KNOWLEDGE_INGEST_SLICE_SECONDS)


def _message(exc: Exception) -> str:
    if isinstance(exc, ValidationError):
        return " ".join(exc.messages)
    return str(exc)


def _fail(source_id: int, token, error: str) -> None:
    if SOURCES.finish(source_id, token, Source.Status.FAILED, error, stage=""):
        Staged(bot_id=0, model="", source_id=source_id).clear()


def source_fail(*, source_id: int, error: str) -> None:
    """Mark a source FAILED whatever run holds it (the task gave up retrying)."""
    Source.objects.filter(pk=source_id).exclude(status=Source.Status.READY).update(
        status=Source.Status.FAILED,
        error=error[:2000],
        stage="",
        finished_at=timezone.now(),
        updated_at=timezone.now(),
    )


# --- Recovery --------------------------------------------------------------------------------------


def sources_resend_unfinished() -> int:
    """A worker starts: send every PENDING and PROCESSING source again. A crashed worker took
    their messages down with it (the one it ran, and the one it had reserved: a source between
    two time slices), and the broker gives them back only after its visibility timeout. A live
    run elsewhere keeps its source (the delivery looks again later); one the crashed worker left
    is taken over as soon as its heartbeat counts as dead. Returns how many were sent."""
    ids = SOURCES.unfinished_ids()
    for source_id in ids:
        _enqueue(source_id)
    return len(ids)


def sources_recover_stuck(*, stale_seconds: int | None = None) -> dict:
    """Beat: requeue sources stuck in PROCESSING (worker killed) or PENDING (message lost).

    A run that already used MAX_ATTEMPTS claims is marked FAILED with the reason instead, so a
    source never stays "processing" for ever.
    """
    stale_seconds = (
        settings.KNOWLEDGE_INGEST_STALE_SECONDS if stale_seconds is None else stale_seconds
    )
    return SOURCES.recover_stuck(
        stale=timedelta(seconds=stale_seconds),
        max_attempts=MAX_ATTEMPTS,
        failure=f"Ingestion was interrupted {MAX_ATTEMPTS} times (the worker stopped). Try "
        "re-ingesting, or a smaller file.",
        enqueue=_enqueue,
        failed_fields={"stage": ""},
        requeued_fields={"stage": "requeued after an interruption"},
    )


@shared_task(name="knowledge.tasks.recover_stuck_sources")
def recover_stuck_sources() -> dict:
    return sources_recover_stuck()
