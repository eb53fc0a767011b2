"""Tenant isolation as a matrix over EVERY URL pattern of the project (issue 14).

The resolver is walked recursively; each route's ids are filled with workspace A's rows and the
route is requested as workspace B's owner (GET and POST, htmx and plain). A route the test has no
rule for fails the test, so a new URL must be classified here. A canary sentence in workspace
A's knowledge is never retrieved, answered, exported, listed or shown to workspace B.
"""

from __future__ import annotations

import json
import re
import uuid

import pytest
from django.urls import URLPattern, URLResolver, get_resolver

from chat.answering import answer
from chat.apikeys import api_key_create
from chat.models import Conversation, Evaluation, Message
from chat.tests.chat_helpers import add_faq
from knowledge import selectors
from knowledge.models import Source
from training.models import ChatTuning

pytestmark = pytest.mark.django_db

CANARY_Q = "What is the launch code of the blue vault?"
CANARY = "The launch code of the blue vault is zebra-quartz-4471."
CANARY_MARK = "zebra-quartz-4471"
CANARY_SOURCE = "Vault secrets handbook"

# Path parameters that name a tenant's row: filled with workspace A's, B must get a 404.
TENANT_PARAMS = {
    "bot_id",
    "source_id",
    "entry_id",
    "run_id",
    "evaluation_id",
    "public_id",
    "key_id",
    "membership_id",
    "invitation_id",
}
# Routes without tenant ids, and what B (logged in, not staff) may get there. Public pages are
# public by design (the customer-facing chat and widget, sign-up, password reset, /v1 checks its
# key); dashboard pages here show B's own workspace only (checked for the canary below).
OWN_OR_PUBLIC = {
    "",
    "accounts/signup/",
    "accounts/signup/sent/",
    "accounts/activate/<uidb64>/<token>/",
    "accounts/team/",
    "accounts/team/leave/",
    "accounts/workspace/switch/",
    "accounts/workspace/delete/",
    "accounts/workspace/new/",  # makes a new workspace of the user's own; takes no ids
    "accounts/language/",  # the user's own dashboard language; takes no ids
    "accounts/invitation/<str:token>/",
    "accounts/login/",
    "accounts/logout/",
    "accounts/password-reset/",
    "accounts/password-reset/sent/",
    "accounts/reset/<uidb64>/<token>/",
    "accounts/reset/done/",
    "bots/",
    "bots/new/",
    "bots/system/status/",
    "widget.js",
    "healthz",
    "v1/chat/completions",
    "v1/models",
    "v1/models/<str:model>",
    "c/<slug:slug>/",
    "c/<slug:slug>/ask/",
    "c/<slug:slug>/handoff/",
    "c/<slug:slug>/widget.json",
}


def walk(patterns=None, prefix: str = ""):
    """(route, pattern) for every URL the project serves, nested includes flattened."""
    for entry in get_resolver().url_patterns if patterns is None else patterns:
        route = prefix + str(entry.pattern)
        if isinstance(entry, URLResolver):
            yield from walk(entry.url_patterns, route)
        elif isinstance(entry, URLPattern):
            yield route, entry


PARAM = re.compile(r"<(?:(\w+):)?(\w+)>")


def fill(route: str, values: dict) -> str:
    route = route.lstrip("^").rstrip("$").replace("\\Z", "")

    def sub(match):
        name = match.group(2)
        return str(values.get(name, values.get("*", "1")))

    return "/" + PARAM.sub(sub, route)


@pytest.fixture
def tenants(user, other_user, bot, other_bot):
    """Workspace A (user, bot: every kind of row) and workspace B (other_user, other_bot)."""
    from accounts.models import Invitation, Membership
    from accounts.services import invitation_create

    entry = add_faq(bot, CANARY_Q, CANARY)
    Source.objects.filter(pk=entry.source_id).update(name=CANARY_SOURCE)
    add_faq(other_bot, "Do you sell bicycles?", "Yes, city and mountain bikes.")
    conversation = Conversation.objects.create(bot=bot, channel="web")
    Message.objects.create(conversation=conversation, role="user", text=CANARY_Q)
    reply = Message.objects.create(
        conversation=conversation, role="assistant", text=CANARY, path="direct"
    )
    # An unanswered canary question too: it is what Insights lists.
    Message.objects.create(conversation=conversation, role="user", text=f"{CANARY_MARK} where?")
    Message.objects.create(
        conversation=conversation, role="assistant", text="I don't know.", path="fallback"
    )
    key, raw_a = api_key_create(bot=bot, name="A's key")
    _key_b, raw_b = api_key_create(bot=other_bot, name="B's key")
    run = ChatTuning.objects.create(bot=bot)
    evaluation = Evaluation.objects.create(bot=bot)
    invitation_create(
        workspace=bot.workspace,
        email="new@example.com",
        role="member",
        invited_by=user,
        base_url="http://testserver",
    )
    a_ids = {
        "bot_id": bot.pk,
        "source_id": entry.source_id,
        "entry_id": entry.pk,
        "run_id": run.pk,
        "evaluation_id": evaluation.pk,
        "public_id": conversation.public_id,
        "key_id": key.pk,
        "membership_id": Membership.objects.get(workspace=bot.workspace, user=user).pk,
        "invitation_id": Invitation.objects.get(workspace=bot.workspace).pk,
        "message_id": reply.pk,
        "slug": bot.slug,
        "field": "name",
        "model": bot.slug,
        "uidb64": "MQ",
        "token": "not-a-token",
    }
    return {"a": a_ids, "raw_a": raw_a, "raw_b": raw_b, "bot": bot, "other_bot": other_bot}


def body(response) -> str:
    if response.streaming:
        return b"".join(response.streaming_content).decode(errors="replace")
    return response.content.decode(errors="replace")


def _admin_ids(bot) -> dict:
    return {"object_id": bot.pk, "app_label": "bots", "*": "1", "url": "x"}


def test_every_url_with_workspace_as_ids_is_a_404_for_another_workspace(client, tenants):
    b_user = tenants["other_bot"].workspace.memberships.get().user
    client.force_login(b_user)
    checked, unclassified = [], []
    for route, _pattern in walk():
        if route.startswith("admin/"):
            continue  # test_admin_links_send_a_non_staff_user_to_the_admin_login
        names = {m.group(2) for m in PARAM.finditer(route)}
        url = fill(route, tenants["a"])
        if names & TENANT_PARAMS:
            statuses = set()
            for method in ("get", "post"):
                for htmx in ({}, {"HTTP_HX_REQUEST": "true"}):
                    response = getattr(client, method)(url, **htmx)
                    statuses.add(response.status_code)
                    assert CANARY_MARK not in body(response)
            # 405 for the method a view does not serve says nothing; the one it serves is a 404.
            assert 404 in statuses and statuses <= {404, 405}, (url, statuses)
            checked.append(route)
        elif route == "c/<slug:slug>/messages/<int:message_id>/rate/":
            # A's customer's message, rated by a visitor of B's making: not theirs.
            response = client.post(url, {"value": "down"})
            assert response.status_code == 404, (url, response.status_code)
            assert Message.objects.get(pk=tenants["a"]["message_id"]).rating is None
            checked.append(route)
        elif route in OWN_OR_PUBLIC:
            response = client.get(url)
            assert response.status_code < 500, (url, response.status_code)
            assert CANARY_MARK not in body(response), url
            checked.append(route)
        else:
            unclassified.append(route)
    assert not unclassified, f"routes with no isolation rule: {unclassified}"
    assert len(checked) > 60  # the walk found the project's URLs
    tuning = ChatTuning.objects.get(pk=tenants["a"]["run_id"])
    assert tuning.status == ChatTuning.Status.QUEUED and not tuning.cancel_requested
    assert tenants["bot"].sources.filter(name=CANARY_SOURCE).exists()  # nothing was deleted


def test_admin_links_send_a_non_staff_user_to_the_admin_login(client, tenants):
    client.force_login(tenants["other_bot"].workspace.memberships.get().user)
    admin_routes = [route for route, _ in walk() if route.startswith("admin/")]
    assert len(admin_routes) > 20
    for route in admin_routes:
        url = fill(route, _admin_ids(tenants["bot"]))
        if route in ("admin/login/", "admin/logout/"):
            continue  # the login page itself; logging out is not a leak
        response = client.get(url)
        if response.status_code == 404:
            continue  # e.g. an app label or object the admin does not know
        assert response.status_code == 302, (url, response.status_code)
        assert response["Location"].startswith("/admin/login/"), (url, response["Location"])


def test_the_v1_api_with_another_workspaces_key_does_not_reach_the_bot(client, tenants):
    a_slug, raw_b = tenants["a"]["slug"], tenants["raw_b"]
    auth = {"HTTP_AUTHORIZATION": f"Bearer {raw_b}"}
    payload = {"model": a_slug, "messages": [{"role": "user", "content": CANARY_Q}]}
    response = client.post(
        "/v1/chat/completions", json.dumps(payload), content_type="application/json", **auth
    )
    assert response.status_code in (403, 404), response.status_code
    assert CANARY_MARK not in body(response)
    assert client.get(f"/v1/models/{a_slug}", **auth).status_code in (403, 404)
    listed = client.get("/v1/models", **auth).json()
    assert [m["id"] for m in listed["data"]] == [tenants["other_bot"].slug]
    # B's own bot, asked the canary question, does not know it.
    payload["model"] = tenants["other_bot"].slug
    response = client.post(
        "/v1/chat/completions", json.dumps(payload), content_type="application/json", **auth
    )
    assert response.status_code == 200
    assert CANARY_MARK not in body(response)


def test_a_canary_in_workspace_a_is_never_retrieved_answered_exported_or_shown_to_b(
    client, tenants
):
    bot, other_bot = tenants["bot"], tenants["other_bot"]
    # Control: A's own bot finds and says it, so the checks below could see it.
    assert CANARY_MARK in answer(bot, CANARY_Q).text

    hits = selectors.search(bot=other_bot, query=CANARY_Q, limit=20)
    assert all(CANARY_MARK not in hit.answer + hit.text for hit in hits)
    reply = answer(other_bot, CANARY_Q)
    assert CANARY_MARK not in reply.text
    assert all(CANARY_SOURCE not in str(source) for source in reply.sources)

    # Every page of B's own bot (the same matrix with B's ids), the export and insights included.
    client.force_login(other_bot.workspace.memberships.get().user)
    b_ids = {**tenants["a"], "bot_id": other_bot.pk, "slug": other_bot.slug}
    export = client.get(f"/bots/{other_bot.pk}/conversations/export.csv")
    assert export.status_code == 200 and CANARY_MARK not in body(export)
    pages = 0
    for route, _ in walk():
        if route.startswith("admin/") or "<" in route.replace("<int:bot_id>", ""):
            continue
        response = client.get(fill(route, b_ids))
        assert CANARY_MARK not in body(response), route
        assert CANARY_SOURCE not in body(response), route
        pages += 1
    assert pages > 25
    # Control: A's export and insights do show it, so the check above could fail.
    client.force_login(bot.workspace.memberships.get().user)
    assert CANARY_MARK in body(client.get(f"/bots/{bot.pk}/conversations/export.csv"))
    assert CANARY_MARK in body(client.get(f"/bots/{bot.pk}/insights/"))


def test_a_made_up_conversation_id_is_a_404_too(client, tenants):
    client.force_login(tenants["other_bot"].workspace.memberships.get().user)
    url = f"/bots/{tenants['other_bot'].pk}/conversations/{uuid.uuid4()}/"
    assert client.get(url).status_code == 404
