"""Models that moved between apps keep every row: a database populated before the move is
migrated forward, and the rows are read back through the models' new homes.

Runs the real migrations on the test database (PostgreSQL): back to the state before the move,
rows written with the historical models, then forward to the newest migrations.
"""

from __future__ import annotations

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

BEFORE_CHAT_MOVE = [
    ("bots", "0015_owner_help_texts_without_benchmark_figures"),
    ("chat", "0001_evaluation"),
]


def _migrate(targets):
    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(targets)
    return executor.loader.project_state(targets).apps


def _leaf_nodes():
    return MigrationExecutor(connection).loader.graph.leaf_nodes()


@pytest.mark.django_db(transaction=True)
def test_conversations_messages_and_api_keys_move_to_chat_without_losing_a_row():
    old = _migrate(BEFORE_CHAT_MOVE)
    workspace = old.get_model("accounts", "Workspace").objects.create(name="Before the move")
    bot = old.get_model("bots", "Bot").objects.create(
        workspace=workspace, name="Shop", slug="shop-before-the-move"
    )
    conversation = old.get_model("bots", "Conversation").objects.create(bot=bot, channel="web")
    message = old.get_model("bots", "Message")
    message.objects.create(conversation=conversation, role="user", text="Do you ship to Mars?")
    message.objects.create(
        conversation=conversation,
        role="assistant",
        text="We ship to Earth only.",
        path="direct",
        score=0.91,
        rating=1,
        training_approved=True,
    )
    old.get_model("bots", "ApiKey").objects.create(
        bot=bot, name="Shop site", prefix="ah_abc", key_hash="f" * 64
    )

    _migrate(_leaf_nodes())

    from django.contrib.contenttypes.models import ContentType

    from chat.models import ApiKey, Conversation, Message

    moved = Conversation.objects.get(bot__slug="shop-before-the-move")
    assert moved.public_id == conversation.public_id
    assert list(moved.messages.values_list("role", "text", "path", "rating")) == [
        ("user", "Do you ship to Mars?", "", None),
        ("assistant", "We ship to Earth only.", "direct", 1),
    ]
    assert Message.objects.get(text="We ship to Earth only.").training_approved is True
    assert ApiKey.objects.get(bot__slug="shop-before-the-move").key_hash == "f" * 64
    assert Conversation._meta.db_table == "bots_conversation"
    assert ContentType.objects.get_for_model(Message).app_label == "chat"
