"""Backup and restore of one workspace as a JSON document (`manage.py workspace_dump` /
`workspace_restore`). Lives in chat, the last app, because it must know every app's models.

The dump holds the workspace, its members' e-mail addresses and roles, every bot with its
settings (thresholds and calibration included), sources with their uploaded files (base64), FAQ
entries, chunks with their vectors, conversations and messages, API keys (their hashes only: the
raw keys were never stored), retrieval and chat tunings with their files in storage (weights,
adapters, training sets), labelled questions and mode comparisons. Left out: invitations (their
links expire), runs in progress (StagedVector) and model-switch history (Reembedding).

Restore creates new rows with new ids in one transaction (foreign keys remapped), so it works
into a fresh database or beside the original once that is gone. Members are matched by e-mail;
a missing one gets an account without a usable password (they reset it). A bot slug, API key
hash or conversation id that already exists in the target makes the restore refuse, naming it.
Ids inside JSON fields (a message's cited chunk ids, a run's held-out entry ids) are history and
are kept as they were.
"""

from __future__ import annotations

import base64
import datetime
import uuid

from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.db import models, transaction

import providers
from accounts.models import Membership, Workspace
from bots.models import Bot
from chat.models import Evaluation, LabelledQuestion
from knowledge.models import Chunk, EmbeddingState, FaqEntry, Source
from knowledge.reembedding import text_search_rebuild
from training.models import Calibration, ChatTuning, DocumentPair, RetrievalTuning

from .models import ApiKey, Conversation, Message, Widget

FORMAT = "askhandle-workspace/1"
# Parents before children: restore walks this order and remaps each foreign key.
MODELS: list[type[models.Model]] = [
    Bot,
    EmbeddingState,
    Calibration,
    Widget,
    Source,
    FaqEntry,
    Chunk,
    Conversation,
    Message,
    ApiKey,
    RetrievalTuning,
    ChatTuning,
    DocumentPair,
    LabelledQuestion,
    Evaluation,
]
# Where a model's rows were filed in dumps made before it moved to the app that owns it.
EARLIER_LABELS = {
    "chat.Conversation": "bots.Conversation",
    "chat.Message": "bots.Message",
    "chat.ApiKey": "bots.ApiKey",
}
# Settings that lived on Bot before they moved to the app that owns them: a dump made then has
# them in its bot rows, under these names (new name: old name).
FROM_BOT_ROW = {
    "knowledge.EmbeddingState": {
        "tuned_embedding_model": "tuned_embedding_model",
        "serving_embedding": "serving_embedding",
    },
    "training.Calibration": {
        "fit": "calibration",
        "caution": "caution",
        "thresholds_auto": "thresholds_auto",
    },
    "chat.Widget": {
        "allowed_origins": "allowed_origins",
        "colour": "widget_colour",
        "position": "widget_position",
    },
}
SKIP_FIELDS = {"search_vector"}  # recomputed from title and text on restore
UNIQUE_CHECKS = [(Bot, "slug"), (ApiKey, "key_hash"), (Conversation, "public_id")]


def _rows(model, workspace: Workspace):
    path = {
        Bot: "workspace",
        Message: "conversation__bot__workspace",
    }.get(model, "bot__workspace")
    return model.objects.filter(**{path: workspace}).order_by("pk")


def _value(field, value):
    if value is None:
        return None
    if field.get_internal_type() == "VectorField":
        return [float(x) for x in value]
    if isinstance(value, datetime.datetime | datetime.date):
        return value.isoformat()
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(field, models.FileField):
        return value.name if value else ""
    return value


def _storage_names(model, row) -> list[str]:
    """Files in storage a row names besides a FileField: tuned weights, adapters, training sets."""
    if model is RetrievalTuning:
        return [row.weights] if row.weights else []
    if model is ChatTuning:
        names = [row.training_file] if row.training_file else []
        if row.adapter:
            names += [f"{row.adapter}/{n}" for n in providers.ADAPTER_FILES]
            names += [f"{row.adapter}/checkpoint/{n}" for n in providers.ADAPTER_FILES]
        return names
    if model is Source:
        return [row.file.name] if row.file else []
    return []


def workspace_dump(*, workspace: Workspace) -> dict:
    """The whole workspace as a JSON-serialisable dict (files base64 under "files")."""
    doc = {
        "format": FORMAT,
        "workspace": {"id": workspace.pk, "name": workspace.name},
        "members": [
            {"email": m.user.email, "role": m.role}
            for m in Membership.objects.filter(workspace=workspace).select_related("user")
        ],
        "tables": {},
        "files": {},
    }
    for model in MODELS:
        fields = [f for f in model._meta.concrete_fields if f.name not in SKIP_FIELDS]
        rows = []
        for row in _rows(model, workspace).iterator(chunk_size=2000):
            rows.append({f.attname: _value(f, getattr(row, f.attname)) for f in fields})
            for name in _storage_names(model, row):
                if default_storage.exists(name):
                    with default_storage.open(name, "rb") as handle:
                        doc["files"][name] = base64.b64encode(handle.read()).decode("ascii")
        doc["tables"][model._meta.label] = rows
    return doc


def _table(doc: dict, model) -> list[dict]:
    """The dumped rows of `model`, also from a dump made before it moved apps."""
    label = model._meta.label
    tables = doc["tables"]
    if label not in tables and label in FROM_BOT_ROW:
        return [
            {
                "bot_id": bot["id"],
                **{new: bot[old] for new, old in FROM_BOT_ROW[label].items() if old in bot},
            }
            for bot in tables.get(Bot._meta.label, [])
        ]
    return tables.get(label, tables.get(EARLIER_LABELS.get(label, label), []))


def _check_unique(doc: dict) -> None:
    for model, name in UNIQUE_CHECKS:
        values = [row[name] for row in _table(doc, model)]
        taken = model.objects.filter(**{f"{name}__in": values}).values_list(name, flat=True)
        if taken:
            raise ValidationError(
                f"Cannot restore: {model._meta.verbose_name} {name} {sorted(map(str, taken))[:3]} "
                "already exists here. Restore into a fresh database, or delete the original first."
            )


def _member(email: str):
    User = get_user_model()
    user = User.objects.filter(email__iexact=email).first()
    if user is None:
        user = User(email=email, **({"username": email} if hasattr(User, "username") else {}))
        user.set_unusable_password()
        user.save()
    return user


@transaction.atomic
def workspace_restore(*, doc: dict, name: str | None = None) -> Workspace:
    """Create the dumped workspace again, with new ids; returns it. Files are written to storage
    under their dumped names (kept if already there: the names are unique). Raises
    ValidationError for a document of another format or a clash with existing rows."""
    if doc.get("format") != FORMAT:
        raise ValidationError(f"Not an AskHandle workspace dump ({FORMAT}).")
    _check_unique(doc)
    workspace = Workspace.objects.create(name=name or doc["workspace"]["name"])
    for member in doc["members"]:
        Membership.objects.create(
            workspace=workspace, user=_member(member["email"]), role=member["role"]
        )
    ids: dict[str, dict[int, int]] = {Workspace._meta.label: {doc["workspace"]["id"]: workspace.pk}}
    for model in MODELS:
        label = model._meta.label
        rows = _table(doc, model)
        fields = [f for f in model._meta.concrete_fields if f.name not in SKIP_FIELDS]
        objs = []
        for row in rows:
            values = {}
            for f in fields:
                if f.primary_key and not f.is_relation:
                    continue  # a new id; a settings row's key is its bot's, remapped below
                if f.attname not in row and f.has_default():
                    continue  # a field newer than the dump
                value = row.get(f.attname)
                if f.is_relation and value is not None:
                    value = ids[f.related_model._meta.label][value]
                values[f.attname] = value
            objs.append(model(**values))
        created = model.objects.bulk_create(objs, batch_size=1000)
        key = model._meta.pk.attname
        ids[label] = {row[key]: obj.pk for row, obj in zip(rows, created, strict=True)}
        # auto_now(_add) stamps "now" on create: put the dumped times back.
        stamped = [
            f.attname
            for f in fields
            if getattr(f, "auto_now_add", False) or getattr(f, "auto_now", False)
        ]
        if stamped and created:
            for row, obj in zip(rows, created, strict=True):
                for attname in stamped:
                    setattr(obj, attname, row[attname])
            model.objects.bulk_update(created, stamped, batch_size=1000)
    for bot_id in ids[Bot._meta.label].values():
        text_search_rebuild(bot_id=bot_id)  # in the bot's language
    _write_files(doc.get("files", {}))
    return workspace


def _write_files(files: dict[str, str]) -> None:
    # Inside the transaction: a file that cannot be written rolls the rows back (a leftover file
    # of a failed restore is harmless, its name is unique).
    for name, data in files.items():
        if default_storage.exists(name):
            continue
        saved = default_storage.save(name, ContentFile(base64.b64decode(data)))
        if saved != name:
            default_storage.delete(saved)
            raise ValidationError(f"Storage renamed {name} to {saved}; the rows name {name}.")
