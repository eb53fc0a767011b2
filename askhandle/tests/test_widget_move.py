"""The widget's settings leave Bot for chat.Widget (issue 26): a bot with its own Share & embed
settings before the move keeps them after, read through its Widget row.

Runs the real migrations on the test database (PostgreSQL), as test_model_moves does: back to
the state before chat's Widget migration, a bot written with the historical models, then forward.
"""

from __future__ import annotations

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

from .test_model_moves import _leaf_nodes, _migrate

WIDGET_MIGRATION = ("chat", "0003_widget_settings")


def _just_before(node) -> list[tuple[str, str | None]]:
    """Every app at its newest migration that does not need `node`: what is unapplied by going
    back is only `node` and what depends on it, and other apps' later migrations (which may
    change bots_bot, too) stay both applied and in the historical models."""
    graph = MigrationExecutor(connection).loader.graph
    after = set(graph.backwards_plan(node))  # node and all that needs it
    targets = []
    for app in sorted({app for app, _name in graph.nodes}):
        kept = [n for n in graph.nodes if n[0] == app and n not in after]
        newest = max(kept, key=lambda n: len(graph.forwards_plan(n)), default=(app, None))
        targets.append(newest)
    return targets


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
