"""The limits that refuse what an owner adds, each with a message naming it: the upload's size,
and per bot the number of sources, the FAQ rows of one file and the chunks of all its sources.
Settings hold the numbers (KNOWLEDGE_MAX_*)."""

from __future__ import annotations

from django.conf import settings
from django.core.exceptions import ValidationError
from django.utils.formats import number_format
from django.utils.translation import gettext as _

from bots.models import Bot

from .models import Chunk, Source


def check_source_limit(bot: Bot) -> None:
    """Refuse another source once the bot has KNOWLEDGE_MAX_SOURCES_PER_BOT."""
    limit = settings.KNOWLEDGE_MAX_SOURCES_PER_BOT
    if Source.objects.filter(bot=bot).count() >= limit:
        raise ValidationError(
            _(
                "This bot already has %(limit)s sources, the limit per bot. Delete one, or "
                "combine files, before adding another."
            )
            % {"limit": _count(limit)}
        )


def read_upload(upload) -> bytes:
    """The upload's bytes, refused when empty or over KNOWLEDGE_MAX_UPLOAD_BYTES."""
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


def check_size_limits(source: Source, *, faq_count: int, chunk_count: int) -> None:
    """Per-bot limits, checked before anything is embedded: one tenant's huge file fails in
    seconds with the limit named, instead of holding the shared ingestion queue for an hour."""
    rows = settings.KNOWLEDGE_MAX_ROWS_PER_UPLOAD
    if source.kind != Source.Kind.MANUAL and faq_count > rows:
        raise ValidationError(
            _(
                "This file has %(n)s FAQ rows; the limit is %(limit)s rows per upload. Split it "
                "into smaller files."
            )
            % {"n": _count(faq_count), "limit": _count(rows)}
        )
    check_chunk_limit(source, chunk_count)


def check_chunk_limit(source: Source, count: int) -> None:
    """Refuse a source whose `count` chunks would take the bot over KNOWLEDGE_MAX_CHUNKS_PER_BOT."""
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


def _count(n: int) -> str:
    return number_format(n, force_grouping=True)


def _mb(n: int) -> str:
    return _("%(n)s MB") % {"n": number_format(n / (1024 * 1024), 1)}
