"""Deleting a source, a bot or a workspace removes its rows AND its files in storage (issue 14):
uploaded files, retrieval-tuning weights, chat-tuning adapters, checkpoints and training sets.
Checked on disk, in MEDIA_ROOT, not only in the database."""

from __future__ import annotations

from pathlib import Path

import pytest
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage

from accounts.models import Membership, Workspace
from bots.models import Bot
from bots.services import bot_delete
from chat.apikeys import api_key_create
from chat.models import ApiKey, Conversation, Message
from knowledge import services
from knowledge.models import Chunk, FaqEntry, Source
from knowledge.tests.factories import upload
from providers.local import ADAPTER_FILES, tuned_weights_name
from training.models import ChatTuning, RetrievalTuning

pytestmark = pytest.mark.django_db

FAQ_CSV = "question,answer\nDo you ship abroad?,Yes.\nCan I return a bike?,Within 30 days.\n"


@pytest.fixture
def media(settings, tmp_path) -> Path:
    settings.MEDIA_ROOT = tmp_path / "media"
    return settings.MEDIA_ROOT


def files_in(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())


def stock(bot, tag: str) -> dict:
    """A bot with everything that leaves files: an ingested upload, a deployed retrieval tuning
    (its weights), a chat tuning (adapter, checkpoint, training set), a conversation, a key."""
    source = services.source_add(bot=bot, upload=upload(f"{tag}.csv", FAQ_CSV), enqueue=False)
    assert services.source_ingest(source_id=source.pk).status == Source.Status.READY
    weights = default_storage.save(tuned_weights_name(f"{tag}-k1"), ContentFile(b"weights"))
    RetrievalTuning.objects.create(bot=bot, status=RetrievalTuning.Status.DEPLOYED, weights=weights)
    adapter = f"chat-adapters/{tag}-run"
    for name in ADAPTER_FILES:
        default_storage.save(f"{adapter}/{name}", ContentFile(b"lora"))
        default_storage.save(f"{adapter}/checkpoint/{name}", ContentFile(b"lora"))
    training_file = default_storage.save(f"chat-training/{tag}.jsonl", ContentFile(b"{}\n"))
    ChatTuning.objects.create(bot=bot, adapter=adapter, training_file=training_file)
    conversation = Conversation.objects.create(bot=bot)
    Message.objects.create(conversation=conversation, role="user", text="Hi")
    api_key_create(bot=bot, name="k")
    return {"source": source}


def test_deleting_a_source_removes_its_chunks_entries_and_file(
    bot, media, django_capture_on_commit_callbacks
):
    source = services.source_add(bot=bot, upload=upload("faq.csv", FAQ_CSV), enqueue=False)
    services.source_ingest(source_id=source.pk)
    assert files_in(media) and Chunk.objects.filter(source=source).exists()

    with django_capture_on_commit_callbacks(execute=True):
        services.source_delete(source=source)

    assert files_in(media) == []
    assert not Chunk.objects.filter(bot=bot).exists()
    assert not FaqEntry.objects.filter(bot=bot).exists()


def test_deleting_a_bot_removes_its_files_tuned_models_adapters_and_conversations(
    bot, other_bot, media, django_capture_on_commit_callbacks
):
    stock(bot, "mine")
    stock(other_bot, "theirs")
    theirs = files_in(media)
    assert len([f for f in theirs if "mine" in f]) == 7  # upload, weights, 4 adapter files, set

    with django_capture_on_commit_callbacks(execute=True):
        bot_delete(bot=bot)

    assert files_in(media) == [f for f in theirs if "mine" not in f]  # the other bot keeps its
    for model in (Source, Chunk, FaqEntry, Conversation, ApiKey, RetrievalTuning, ChatTuning):
        assert not model.objects.filter(bot_id=bot.pk).exists(), model
    assert not Message.objects.filter(conversation__bot_id=bot.pk).exists()
    assert Chunk.objects.filter(bot=other_bot).exists()


def test_a_failed_deletion_keeps_the_files(bot, media, django_capture_on_commit_callbacks):
    from django.db import transaction

    stock(bot, "mine")
    before, bot_id = files_in(media), bot.pk
    with django_capture_on_commit_callbacks(execute=True):
        with pytest.raises(RuntimeError), transaction.atomic():
            bot_delete(bot=bot)
            raise RuntimeError("rolled back")
    assert files_in(media) == before
    assert Bot.objects.filter(pk=bot_id).exists()


def test_an_owner_deletes_the_workspace_with_everything_in_it(
    client, user, bot, other_bot, media, make_user, django_capture_on_commit_callbacks
):
    workspace = bot.workspace
    stock(bot, "mine")
    second = Bot.objects.create(workspace=workspace, name="Second", slug="second")
    stock(second, "second")
    stock(other_bot, "theirs")
    member = make_user("member@example.com", "Member's own")
    Membership.objects.create(workspace=workspace, user=member, role=Membership.Role.MEMBER)

    # A member may not; an owner who mistypes the name does not.
    client.force_login(member)
    client.post("/accounts/workspace/switch/", {"workspace": workspace.pk})
    response = client.post("/accounts/workspace/delete/", {"confirm_name": workspace.name})
    assert response.status_code == 403
    client.force_login(user)
    client.post("/accounts/workspace/delete/", {"confirm_name": "acme inc"})
    assert Workspace.objects.filter(pk=workspace.pk).exists()

    with django_capture_on_commit_callbacks(execute=True):
        response = client.post("/accounts/workspace/delete/", {"confirm_name": workspace.name})

    assert response.status_code == 302
    assert not Workspace.objects.filter(pk=workspace.pk).exists()
    assert not Bot.objects.filter(workspace_id=workspace.pk).exists()
    assert files_in(media) and all("theirs" in f for f in files_in(media))
    assert Chunk.objects.filter(bot=other_bot).exists()
    assert user.__class__.objects.filter(pk=member.pk).exists()  # accounts stay
    member.refresh_from_db()
    assert member.workspaces.count() == 1  # their own workspace


def test_the_team_page_offers_deletion_to_owners_only(client, user, bot, make_user):
    client.force_login(user)
    assert "Delete the workspace" in client.get("/accounts/team/").content.decode()
    member = make_user("member@example.com", "Member's own")
    Membership.objects.create(workspace=bot.workspace, user=member, role=Membership.Role.MEMBER)
    client.force_login(member)
    client.post("/accounts/workspace/switch/", {"workspace": bot.workspace.pk})
    assert "Delete the workspace" not in client.get("/accounts/team/").content.decode()
