"""Writes over knowledge: adding sources, ingesting them, the FAQ editor, re-embedding.

Ingestion (`source_ingest`) runs in a Celery worker: parse -> chunk -> embed in batches (outside
any transaction) -> one `atomic()` block replaces the source's chunks and marks it READY.

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
from dataclasses import dataclass
from datetime import timedelta

from celery import shared_task
from celery.exceptions import SoftTimeLimitExceeded
from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.files.base import ContentFile
from django.db import InterfaceError, OperationalError, connection, transaction
from django.db.models import F
from django.utils import timezone, translation
from django.utils.formats import number_format
from django.utils.translation import gettext as _
from django.utils.translation import gettext_noop

import providers
from askhandle.jobs import ClaimedJobs, GiveUpTask, Superseded
from bots.models import Bot

from . import chunking, fetching, language_detection, parsing, serving, vector_indexes
from .models import Chunk, FaqEntry, Source
from .resume import Staged, digest
from .signals import faq_changed_on_commit
from .staging import as_vector, stage_and_run

log = logging.getLogger(__name__)

TITLE_MAX = 500  # Chunk.title's max_length
EMBED_BATCH = 256  # texts per provider call; progress is written after each batch
MAX_ATTEMPTS = 3  # claims of one run (worker lost, recovered) before it is declared failed
MANUAL_NAME = "FAQ editor"
SOURCES = ClaimedJobs(
    Source,
    waiting=Source.Status.PENDING,
    running=Source.Status.PROCESSING,
    failed=Source.Status.FAILED,
)
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


class ModelChanged(Exception):
    """The bot's embedding model changed (a tuned model was deployed) while this run embedded."""


class YieldTurn(Exception):
    """This run used its time slice and has more to embed: it goes to the back of the queue."""


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
    _check_source_limit(bot)
    if url:
        fetching.check_url(url)  # resolves and refuses private addresses; does not connect
        source = Source(bot=bot, kind=Source.Kind.URL, name=(name or url)[:255], url=url.strip())
        source.full_clean(exclude=["file"])
    elif upload is not None:
        data = _read_upload(upload)
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
            _check_source_limit(bot)
            source.save()
    except BaseException:
        if source.file:
            source.file.storage.delete(source.file.name)
        raise
    if enqueue:
        _enqueue(source.pk)
    return source


def _check_source_limit(bot: Bot) -> None:
    limit = settings.KNOWLEDGE_MAX_SOURCES_PER_BOT
    if Source.objects.filter(bot=bot).count() >= limit:
        raise ValidationError(
            _(
                "This bot already has %(limit)s sources, the limit per bot. Delete one, or "
                "combine files, before adding another."
            )
            % {"limit": _count(limit)}
        )


def _read_upload(upload) -> bytes:
    limit = settings.KNOWLEDGE_MAX_UPLOAD_BYTES
    size = getattr(upload, "size", None)
    if size is not None and size > limit:
        raise ValidationError(
            _("The file is %(size)s; the limit is %(limit)s.")
            % {"size": _mb(size), "limit": _mb(limit)}
        )
    data = upload.read(limit + 1)
    if len(data) > limit:
        raise ValidationError(_("The file is larger than %(limit)s.") % {"limit": _mb(limit)})
    if not data.strip():
        raise ValidationError(_("The file is empty."))
    return data


def _count(n: int) -> str:
    return number_format(n, force_grouping=True)


def _mb(n: int) -> str:
    return _("%(n)s MB") % {"n": number_format(n / (1024 * 1024), 1)}


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
    import pypdf  # ~90 ms to import: loaded when a PDF arrives, as in parsing.parse_pdf

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
        entry = FaqEntry(
            bot=bot,
            source=source,
            question=question.strip(),
            answer=answer.strip(),
            category=category.strip(),
            url=url.strip(),
            alternate_questions=_clean_alternates(alternate_questions),
        )
        entry.full_clean()
        entry.save()
        _enqueue(source.pk)
    return entry


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
        entry.question, entry.answer = question.strip(), answer.strip()
        entry.category, entry.url = category.strip(), url.strip()
        entry.alternate_questions = _clean_alternates(alternate_questions)
        entry.full_clean()
        entry.save()
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


@dataclass
class _ChunkSpec:
    title: str
    text: str
    embed_text: str
    faq_index: int | None  # index into the parsed FAQ list (file sources) / entry list (manual)


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
    source = Source.objects.select_related("bot").get(pk=source_id)
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


def _load(source: Source) -> tuple[parsing.Parsed, list[FaqEntry] | None]:
    """What a source says: (parsed content, existing entries when the database is the truth:
    the FAQ editor's own source, or an imported FAQ the owner edited in the dashboard)."""
    if source.kind == Source.Kind.MANUAL or source.entries_edited:
        entries = list(FaqEntry.objects.filter(source=source).order_by("pk"))
        faqs = [
            parsing.FaqItem(e.question, e.answer, e.category, e.url, list(e.alternate_questions))
            for e in entries
        ]
        return parsing.Parsed(faqs=faqs), entries
    if source.kind == Source.Kind.URL:
        page = fetching.fetch(source.url)
        if page.content_type == "application/pdf" or page.body[:5] == b"%PDF-":
            return parsing.parse_pdf(page.body, source.name), None
        if page.content_type in ("text/plain", "text/markdown"):
            text = parsing.decode_text(page.body)
            return (
                parsing.parse_markdown
                if page.content_type == "text/markdown"
                else parsing.parse_text
            )(text, source.name), None
        return parsing.parse_html(page.body, page.url), None
    if not source.file:
        raise parsing.ParseError(_("The uploaded file is missing; upload it again."))
    try:
        with source.file.open("rb") as handle:
            data = handle.read()
    except OSError as exc:
        raise parsing.ParseError(_("The uploaded file is missing; upload it again.")) from exc
    _kind, parsed = parsing.parse_bytes(data, source.file.name, source.kind)
    return parsed, None


def _specs(parsed: parsing.Parsed, model: str) -> list[_ChunkSpec]:
    """One chunk per FAQ phrasing and per document piece, with the text `model` embeds
    (knowledge.serving.chunk_embed_text: a phrasing alone, or with its entry for a passage model)."""
    specs: list[_ChunkSpec] = []

    def spec(title: str, text: str, faq_index: int | None) -> _ChunkSpec:
        chunk = {"faq_id": faq_index is not None, "title": title, "text": text}
        embed = serving.chunk_embed_text(chunk, model)
        return _ChunkSpec(title=title, text=text, embed_text=embed, faq_index=faq_index)

    for i, faq in enumerate(parsed.faqs):
        text = f"Q: {faq.question}\nA: {faq.answer}"
        for phrasing in [faq.question, *faq.alternate_questions]:
            specs.append(spec(phrasing[:TITLE_MAX], text, i))
    for piece in chunking.chunk_sections(parsed.sections):
        specs.append(spec(piece.title, piece.text, None))
    return specs


def _known_vectors(source: Source, model: str) -> dict[str, object]:
    """{embedded text: vector} of the source's current chunks that `model` embedded."""
    known = {}
    rows = Chunk.objects.filter(source=source, embedding_model=model).values_list(
        "faq_id", "title", "text", "embedding"
    )
    for faq_id, title, text, vector in rows.iterator(chunk_size=2000):
        if faq_id and len(title) >= TITLE_MAX:
            continue  # a truncated phrasing: its full text is unknown
        known[serving.chunk_embed_text({"faq_id": faq_id, "title": title, "text": text}, model)] = (
            vector
        )
    return known


def _check_size_limits(source: Source, parsed, specs: list[_ChunkSpec]) -> None:
    """Per-bot limits, checked before anything is embedded: one tenant's huge file fails in
    seconds with the limit named, instead of holding the shared ingestion queue for an hour."""
    rows = settings.KNOWLEDGE_MAX_ROWS_PER_UPLOAD
    if source.kind != Source.Kind.MANUAL and len(parsed.faqs) > rows:
        raise ValidationError(
            _(
                "This file has %(n)s FAQ rows; the limit is %(limit)s rows per upload. Split it "
                "into smaller files."
            )
            % {"n": _count(len(parsed.faqs)), "limit": _count(rows)}
        )
    _check_chunk_limit(source, len(specs))


def _check_chunk_limit(source: Source, count: int) -> None:
    chunks = settings.KNOWLEDGE_MAX_CHUNKS_PER_BOT
    others = Chunk.objects.filter(bot_id=source.bot_id).exclude(source=source).count()
    if others + count > chunks:
        raise ValidationError(
            _(
                "This source would give the bot %(n)s chunks; the limit is %(limit)s chunks per "
                "bot. Remove sources or split the bot."
            )
            % {"n": _count(others + count), "limit": _count(chunks)}
        )


def _ingest(source: Source, token, *, slice_seconds: float = 0) -> None:
    started = time.perf_counter()
    parsed, manual_entries = _load(source)
    parsed_at = time.perf_counter()
    model = serving.embedding_model_for_bot(source.bot)
    specs = _specs(parsed, model)
    _check_size_limits(source, parsed, specs)
    vectors = _embed(source, token, specs, model, slice_seconds=slice_seconds)
    embedded_at = time.perf_counter()
    SOURCES.progress(source.pk, token, stage=gettext_noop("saving"))
    _save(source, token, parsed, manual_entries, specs, vectors, model)
    log.info(
        "Source %s: %d chunks; read %.2f s, embedded %.2f s, saved %.2f s",
        source.pk,
        len(specs),
        parsed_at - started,
        embedded_at - parsed_at,
        time.perf_counter() - embedded_at,
    )


def _embed(source: Source, token, specs: list[_ChunkSpec], model: str, *, slice_seconds=0) -> list:
    """Every spec's vector, with progress. Texts this source already has vectors for, from the
    same model, are not embedded again: editing one FAQ entry, or re-ingesting an unchanged
    file, embeds only what changed. Each batch is staged once embedded (knowledge.resume): a
    run that takes over from a killed worker resumes from the last saved batch."""
    provider = serving.embedding_provider(source.bot)
    model_arg = serving.embedding_model_arg(source.bot)
    known = _known_vectors(source, model)
    staged = Staged(bot_id=source.bot_id, model=model, source_id=source.pk)
    # Only the digests until the last slice: loading every staged vector at each slice of a
    # large file would read it all again and again.
    earlier = staged.digests()
    vectors: list = [known.get(spec.embed_text) for spec in specs]
    todo = [
        i
        for i, vector in enumerate(vectors)
        if vector is None and digest(specs[i].embed_text) not in earlier
    ]
    reused = len(specs) - len(todo)
    SOURCES.progress(
        source.pk,
        token,
        stage=gettext_noop("embedding"),
        progress_total=len(specs),
        progress_done=reused,
    )
    # Batches of similar length: the model pads each batch to its longest text, so embedding in
    # length order (as one big call would) instead of file order saved ~25% of the model time.
    order = sorted(todo, key=lambda i: len(specs[i].embed_text))
    deadline = time.monotonic() + slice_seconds
    for start in range(0, len(order), EMBED_BATCH):
        if slice_seconds and start and time.monotonic() > deadline:
            raise YieldTurn
        batch = order[start : start + EMBED_BATCH]
        texts = [specs[i].embed_text for i in batch]
        embedded = provider.embed(texts, model=model_arg, kind="passage")
        for i, vector in zip(batch, embedded, strict=True):
            vectors[i] = vector
        staged.save(texts, embedded)
        SOURCES.progress(source.pk, token, progress_done=reused + start + len(batch))
    if any(vector is None for vector in vectors):
        staged_vectors = staged.vectors()
        for i, spec in enumerate(specs):
            if vectors[i] is None:
                vectors[i] = staged_vectors[digest(spec.embed_text)]
    return vectors


def _save(source: Source, token, parsed, manual_entries, specs, vectors, model: str) -> None:
    """One transaction replaces the source's FAQ entries and chunks and marks it READY."""
    bot = source.bot
    with transaction.atomic():
        # The bot row first (the order training.retrieval's deploy takes too): a tuned model
        # deployed while this source was being embedded means these vectors are another model's.
        current = Bot.objects.select_for_update().get(pk=bot.pk)
        if not SOURCES.owned(source.pk, token).select_for_update().exists():
            raise Superseded
        if serving.embedding_model_for_bot(current) != model:
            raise ModelChanged
        # Again under the bot's lock: two sources ingested at once each passed the early check.
        _check_chunk_limit(source, len(specs))
        had_faqs = FaqEntry.objects.filter(source=source).exists()
        Chunk.objects.filter(source=source)._raw_delete(connection.alias)  # no cascades from chunks
        entries = manual_entries if manual_entries is not None else _replace_entries(source, parsed)
        _copy_chunks(bot, source, specs, vectors, [e.pk for e in entries], model)
        Staged(bot_id=bot.pk, model=model, source_id=source.pk).clear()
        now = timezone.now()
        SOURCES.owned(source.pk, token).update(
            status=Source.Status.READY,
            stage="",
            error="",
            chunk_count=len(specs),
            embedding_model=model,
            warnings=parsed.warnings[:200],
            language=_language_of(parsed),
            progress_done=len(specs),
            finished_at=now,
            updated_at=now,
        )
        if had_faqs or entries:
            faq_changed_on_commit(bot.pk, f"{source.name} changed")
        vector_indexes.sync_on_commit(bot.pk)


def _language_of(parsed: parsing.Parsed) -> str:
    """The language the source is written in (knowledge.language_detection; "" if unclear)."""
    texts = [f"{faq.question} {faq.answer}" for faq in parsed.faqs[:200]]
    texts += [f"{section.title} {section.text}" for section in parsed.sections[:20]]
    return language_detection.detect(texts)


def _replace_entries(source: Source, parsed) -> list[FaqEntry]:
    FaqEntry.objects.filter(source=source).delete()
    return FaqEntry.objects.bulk_create(
        [
            FaqEntry(
                bot_id=source.bot_id,
                source=source,
                question=f.question,
                answer=f.answer,
                category=f.category,
                url=f.url,
                alternate_questions=f.alternate_questions,
                external_id=f.external_id,
            )
            for f in parsed.faqs
        ],
        batch_size=1000,
    )


STAGE_COLUMNS = [
    ("bot_id", "bigint", "int8"),
    ("source_id", "bigint", "int8"),
    ("faq_id", "bigint", "int8"),
    ("position", "integer", "int4"),
    ("title", "varchar(500)", "varchar"),
    ("text", "text", "text"),
    ("embedding", "vector", "vector"),
    ("embedding_model", "varchar(200)", "varchar"),
    ("created_at", "timestamptz", "timestamptz"),
]
CHUNK_COLUMNS = ", ".join(name for name, _, _ in STAGE_COLUMNS)
# The full-text vector (title weight A, text weight B) is computed in the same statement that
# inserts the rows, in the bot's language (knowledge.serving.text_search_config): a separate UPDATE would write every row twice, and each new row version is
# inserted into the HNSW and GIN indexes again (measured: saving took about twice as long).
INSERT_SQL = (
    f"INSERT INTO knowledge_chunk ({CHUNK_COLUMNS}, search_vector) SELECT {CHUNK_COLUMNS}, "
    f"{serving.SEARCH_VECTOR_SQL} FROM knowledge_chunk_stage ORDER BY position"
)


def _copy_chunks(
    bot, source, specs: list[_ChunkSpec], vectors: list, entry_ids: list[int], model: str
) -> None:
    """Stage the rows with a binary COPY, then one INSERT ... SELECT (knowledge.staging). Must
    run inside the caller's transaction."""
    now = timezone.now()
    rows = (
        (
            bot.pk,
            source.pk,
            entry_ids[spec.faq_index] if spec.faq_index is not None else None,
            position,
            spec.title,
            spec.text,
            as_vector(vector),
            model,
            now,
        )
        for position, (spec, vector) in enumerate(zip(specs, vectors, strict=True))
    )
    stage_and_run(
        table="knowledge_chunk_stage",
        columns=STAGE_COLUMNS,
        rows=rows,
        statements=[(INSERT_SQL, {"ts": serving.text_search_config(bot)})],
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
