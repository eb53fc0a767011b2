"""Backup and restore (issue 14): `workspace_dump` then `workspace_restore` gives a workspace whose
bot answers the same questions the same way (text and path), with its files back on disk, its
conversations, and API keys that still work (their hashes travel)."""

from __future__ import annotations

import json

import pytest
from django.core.management import CommandError, call_command

from accounts.models import Workspace
from accounts.services import workspace_delete
from bots.models import Bot
from chat.answering import answer
from chat.apikeys import api_key_create
from chat.models import ApiKey, Conversation, Message, Widget
from knowledge import services
from knowledge.models import Chunk, FaqEntry, Source
from knowledge.tests.factories import upload

pytestmark = pytest.mark.django_db

FAQ_CSV = (
    "question,answer,alternate_questions\n"
    'Do you ship abroad?,"Yes, to 30 countries; delivery takes 5-8 days.",Do you deliver overseas?\n'
    "Can I return a bike?,Within 30 days with the receipt.,What is your return policy?\n"
    "How long is the warranty?,Frames have a lifetime warranty.,\n"
)
MANUAL = "# Store hours\n\nThe Utrecht store opens at 9:00 and closes at 18:00 on weekdays.\n"
QUESTIONS = [
    "Do you ship abroad?",
    "Can I send a bike back?",
    "When does the Utrecht store open?",
    "What is the warranty on a frame?",
    "Who won the football match yesterday?",
]


@pytest.fixture
def media(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path / "media"
    return settings.MEDIA_ROOT


def _answers(bot) -> list[tuple[str, str]]:
    return [(reply.text, reply.path) for reply in (answer(bot, q) for q in QUESTIONS)]


def test_a_restored_workspace_answers_the_same_questions_the_same_way(
    client, bot, media, tmp_path, django_capture_on_commit_callbacks
):
    for name, data in (("faq.csv", FAQ_CSV), ("hours.md", MANUAL)):
        source = services.source_add(bot=bot, upload=upload(name, data), enqueue=False)
        assert services.source_ingest(source_id=source.pk).status == Source.Status.READY
    Bot.objects.filter(pk=bot.pk).update(direct_threshold=0.9, answer_threshold=0.5)
    bot.refresh_from_db()
    bot.calibration.caution = 0.55
    bot.calibration.save()
    Widget.objects.filter(bot=bot).update(allowed_origins="https://shop.example.com")
    conversation = Conversation.objects.create(bot=bot)
    Message.objects.create(conversation=conversation, role="user", text="Hello")
    _key, raw = api_key_create(bot=bot, name="site")
    before = _answers(bot)
    assert {path for _, path in before} >= {"direct", "fallback"}  # a mix worth comparing
    counts = {m: m.objects.filter(bot=bot).count() for m in (Source, FaqEntry, Chunk)}
    files = sorted(p.read_bytes() for p in media.rglob("*") if p.is_file())
    workspace = bot.workspace

    dump = tmp_path / "workspace.json"
    call_command("workspace_dump", str(workspace.pk), "--output", str(dump))
    doc = json.loads(dump.read_text())
    assert doc["members"] == [{"email": "owner@example.com", "role": "owner"}]
    with django_capture_on_commit_callbacks(execute=True):
        workspace_delete(workspace=workspace, confirm_name=workspace.name)
    assert not any(p.is_file() for p in media.rglob("*"))  # the files really are gone
    assert not Bot.objects.filter(slug="acme").exists()

    call_command("workspace_restore", str(dump))

    restored = Bot.objects.get(slug="acme")
    assert restored.pk != bot.pk and restored.workspace.pk != workspace.pk
    assert restored.workspace.memberships.get().user.email == "owner@example.com"
    assert (restored.direct_threshold, restored.answer_threshold) == (0.9, 0.5)
    # The settings of later apps travel too.
    assert restored.calibration.caution == 0.55
    assert restored.widget.allowed_origin_list == ["https://shop.example.com"]
    assert {m: m.objects.filter(bot=restored).count() for m in counts} == counts
    assert sorted(p.read_bytes() for p in media.rglob("*") if p.is_file()) == files
    assert Message.objects.filter(conversation__bot=restored).count() == 1
    assert _answers(restored) == before
    # The same key works: only its hash was stored, and the hash travelled.
    response = client.get("/v1/models", HTTP_AUTHORIZATION=f"Bearer {raw}")
    assert response.status_code == 200 and response.json()["data"][0]["id"] == "acme"
    # Re-ingesting a restored source reads its restored file.
    source = Source.objects.get(bot=restored, kind=Source.Kind.CSV)
    services.source_requeue(source_id=source.pk)
    assert services.source_ingest(source_id=source.pk).status == Source.Status.READY


def test_restoring_beside_the_original_refuses_and_names_the_clash(bot, tmp_path):
    api_key_create(bot=bot, name="site")
    dump = tmp_path / "workspace.json"
    call_command("workspace_dump", str(bot.workspace.pk), "--output", str(dump))
    with pytest.raises(CommandError, match="acme"):
        call_command("workspace_restore", str(dump))
    assert Workspace.objects.count() == 1 and ApiKey.objects.count() == 1


def test_a_dump_made_before_models_moved_apps_restores_conversations_keys_and_settings(
    bot, tmp_path, django_capture_on_commit_callbacks
):
    conversation = Conversation.objects.create(bot=bot)
    Message.objects.create(conversation=conversation, role="user", text="Hello")
    api_key_create(bot=bot, name="site")
    dump = tmp_path / "workspace.json"
    call_command("workspace_dump", str(bot.workspace.pk), "--output", str(dump))
    doc = json.loads(dump.read_text())
    # Before chat 0002 these rows were filed under bots' labels.
    for model in ("Conversation", "Message", "ApiKey"):
        doc["tables"][f"bots.{model}"] = doc["tables"].pop(f"chat.{model}")
    # and the settings of later apps were fields of the bot row.
    for label in ("knowledge.EmbeddingState", "training.Calibration", "chat.Widget"):
        del doc["tables"][label]
    doc["tables"]["bots.Bot"][0].update(
        tuned_embedding_model="", serving_embedding="", calibration={"curve": {}}, caution=0.4,
        thresholds_auto=False, allowed_origins="https://shop.example.com",
        widget_colour="#123456", widget_position="bottom-left",
    )  # fmt: skip
    dump.write_text(json.dumps(doc))
    with django_capture_on_commit_callbacks(execute=True):
        workspace_delete(workspace=bot.workspace, confirm_name=bot.workspace.name)
    assert not Conversation.objects.exists()

    call_command("workspace_restore", str(dump))

    restored = Bot.objects.get(slug="acme")
    assert list(
        Message.objects.filter(conversation__bot=restored).values_list("text", flat=True)
    ) == ["Hello"]
    assert ApiKey.objects.get(bot=restored).name == "site"
    assert (restored.calibration.caution, restored.calibration.thresholds_auto) == (0.4, False)
    assert restored.calibration.fit == {"curve": {}}
    assert restored.embedding_state.serving_embedding == ""
    assert (restored.widget.allowed_origins, restored.widget.colour) == (
        "https://shop.example.com",
        "#123456",
    )
