"""Models and fields that moved between apps keep every row: a database populated before the
move is migrated forward, and the rows are read back through their new homes (issue 26:
Conversation, Message and ApiKey into chat; Bot's settings into knowledge, training and chat).

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


def _just_before(*nodes) -> list[tuple[str, str | None]]:
    """Every app at its newest migration that needs none of `nodes`: what is unapplied by going
    back is only `nodes` and what depends on them, and other apps' later migrations (which may
    change bots_bot, too) stay both applied and in the historical models."""
    graph = MigrationExecutor(connection).loader.graph
    after = {n for node in nodes for n in graph.backwards_plan(node)}  # and all that needs them
    targets = []
    for app in sorted({app for app, _name in graph.nodes}):
        kept = [n for n in graph.nodes if n[0] == app and n not in after]
        newest = max(kept, key=lambda n: len(graph.forwards_plan(n)), default=(app, None))
        targets.append(newest)
    return targets


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


WIDGET_MIGRATION = ("chat", "0003_widget_settings")


@pytest.mark.django_db(transaction=True)
def test_each_bots_widget_settings_are_copied_into_its_widget_row():
    old = _migrate(_just_before(WIDGET_MIGRATION))
    workspace = old.get_model("accounts", "Workspace").objects.create(name="Before Widget")
    bot = old.get_model("bots", "Bot")
    custom = bot.objects.create(
        workspace=workspace,
        name="Shop",
        slug="shop-before-widget",
        allowed_origins="https://shop.example.com\nhttps://*.example.org",
        widget_colour="#e11d48",
        widget_position="bottom-left",
    )
    plain = bot.objects.create(workspace=workspace, name="Plain", slug="plain-before-widget")

    _migrate(_leaf_nodes())

    from chat.models import Widget

    widget = Widget.objects.get(bot_id=custom.pk)
    assert (widget.allowed_origins, widget.colour, widget.position) == (
        "https://shop.example.com\nhttps://*.example.org",
        "#e11d48",
        "bottom-left",
    )
    assert widget.allowed_origin_list == ["https://shop.example.com", "https://*.example.org"]
    defaults = Widget.objects.get(bot_id=plain.pk)
    assert (defaults.allowed_origins, defaults.colour, defaults.position) == (
        "",
        "#4f46e5",
        "bottom-right",
    )


@pytest.mark.django_db(transaction=True)
def test_each_bots_embedding_state_and_calibration_are_copied_into_their_apps():
    old = _migrate(
        _just_before(
            ("knowledge", "0012_embedding_state"), ("training", "0004_calibration_settings")
        )
    )
    workspace = old.get_model("accounts", "Workspace").objects.create(name="Before settings")
    fit = {"curve": {"threshold": [0.4]}, "model": "local:all-MiniLM-L6-v2~t3"}
    bot = old.get_model("bots", "Bot").objects.create(
        workspace=workspace, name="Tuned", slug="tuned-before-settings",
        tuned_embedding_model="all-MiniLM-L6-v2~t3", serving_embedding="local:all-MiniLM-L6-v2",
        calibration=fit, caution=0.35, thresholds_auto=False,
    )  # fmt: skip

    _migrate(_leaf_nodes())

    from knowledge.models import EmbeddingState
    from training.models import Calibration

    state = EmbeddingState.objects.get(bot_id=bot.pk)
    assert (state.tuned_embedding_model, state.serving_embedding) == (
        "all-MiniLM-L6-v2~t3",
        "local:all-MiniLM-L6-v2",
    )
    calibration = Calibration.objects.get(bot_id=bot.pk)
    assert (calibration.fit, calibration.caution, calibration.thresholds_auto) == (fit, 0.35, False)
