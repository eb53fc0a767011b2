"""The steps of one ingestion run on a source it has claimed (knowledge.services.source_ingest
runs them): read the source, cut it into chunk specs, embed them in batches, then replace the
source's FAQ entries and chunks in one transaction. Progress and the final replace only apply
while the run's claim (SOURCES) still holds."""

from __future__ import annotations

import time
from dataclasses import dataclass

from django.db import connection, transaction
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_noop

from askhandle.jobs import ClaimedJobs, Superseded
from bots.models import Bot

from . import chunking, documents, fetching, language_detection, parsing, serving, vector_indexes
from .limits import check_chunk_limit
from .models import Chunk, FaqEntry, Source
from .parsed import FaqItem, Parsed, ParseError
from .resume import Staged, digest
from .signals import faq_changed_on_commit
from .staging import as_vector, stage_and_run

TITLE_MAX = 500  # Chunk.title's max_length
EMBED_BATCH = 256  # texts per provider call; progress is written after each batch
# The sources' claims (askhandle.jobs): knowledge.services claims, queues and recovers with it;
# the steps below report progress and replace chunks only while the run's claim holds.
SOURCES = ClaimedJobs(
    Source,
    waiting=Source.Status.PENDING,
    running=Source.Status.PROCESSING,
    failed=Source.Status.FAILED,
)


class ModelChanged(Exception):
    """The bot's embedding model changed (a tuned model was deployed) while this run embedded."""


class YieldTurn(Exception):
    """This run used its time slice and has more to embed: it goes to the back of the queue."""


@dataclass
class ChunkSpec:
    """One chunk to store: its title and text, and the text its vector is embedded from."""

    title: str
    text: str
    embed_text: str
    faq_index: int | None  # index into the parsed FAQ list (file sources) / entry list (manual)


def load_source(source: Source) -> tuple[Parsed, list[FaqEntry] | None]:
    """What a source says: (parsed content, existing entries when the database is the truth:
    the FAQ editor's own source, or an imported FAQ the owner edited in the dashboard)."""
    if source.kind == Source.Kind.MANUAL or source.entries_edited:
        entries = list(FaqEntry.objects.filter(source=source).order_by("pk"))
        faqs = [
            FaqItem(e.question, e.answer, e.category, e.url, list(e.alternate_questions))
            for e in entries
        ]
        return Parsed(faqs=faqs), entries
    if source.kind == Source.Kind.URL:
        page = fetching.fetch(source.url)
        if page.content_type == "application/pdf" or page.body[:5] == b"%PDF-":
            return documents.parse_pdf(page.body, source.name), None
        if page.content_type in ("text/plain", "text/markdown"):
            text = parsing.decode_text(page.body)
            return (
                documents.parse_markdown
                if page.content_type == "text/markdown"
                else documents.parse_text
            )(text, source.name), None
        return documents.parse_html(page.body, page.url), None
    if not source.file:
        raise ParseError(_("The uploaded file is missing; upload it again."))
    try:
        with source.file.open("rb") as handle:
            data = handle.read()
    except OSError as exc:
        raise ParseError(_("The uploaded file is missing; upload it again.")) from exc
    _kind, parsed = parsing.parse_bytes(data, source.file.name, source.kind)
    return parsed, None


def chunk_specs(parsed: Parsed, model: str) -> list[ChunkSpec]:
    """One chunk per FAQ phrasing and per document piece, with the text `model` embeds
    (knowledge.serving.chunk_embed_text: a phrasing alone, or with its entry for a passage model)."""
    specs: list[ChunkSpec] = []

    def spec(title: str, text: str, faq_index: int | None) -> ChunkSpec:
        chunk = {"faq_id": faq_index is not None, "title": title, "text": text}
        embed = serving.chunk_embed_text(chunk, model)
        return ChunkSpec(title=title, text=text, embed_text=embed, faq_index=faq_index)

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


def embed_specs(
    source: Source, token, specs: list[ChunkSpec], model: str, *, slice_seconds=0
) -> list:
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


def save_chunks(source: Source, token, parsed, manual_entries, specs, vectors, model: str) -> None:
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
        check_chunk_limit(source, len(specs))
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


def _language_of(parsed: Parsed) -> str:
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
    bot, source, specs: list[ChunkSpec], vectors: list, entry_ids: list[int], model: str
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
