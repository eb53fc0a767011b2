import pytest
from django.urls import reverse

from bots.models import Bot

pytestmark = pytest.mark.django_db


def test_bot_list_shows_only_own_workspace_bots(owner_client, bot, other_bot):
    response = owner_client.get(reverse("bots:list"))
    assert response.status_code == 200
    assert b"Acme Help" in response.content
    assert b"Rival Help" not in response.content


def test_empty_state_invites_first_bot(owner_client):
    response = owner_client.get(reverse("bots:list"))
    assert b"Create your first bot" in response.content


def test_create_bot_generates_slug_and_defaults(owner_client, workspace):
    response = owner_client.post(
        reverse("bots:create"),
        {
            "name": "Shop Helper",
            "slug": "",
            "greeting": "Hello!",
            "instructions": "Be brief.",
            "mode": "rag",
            "fallback_message": "I don't know.",
            "provider": "local",
            "direct_threshold": "0.8",
            "answer_threshold": "0.5",
            "primary_colour": "#112233",
        },
    )
    bot = Bot.objects.get(name="Shop Helper")
    assert response.status_code == 302 and response.url == reverse("bots:detail", args=[bot.pk])
    assert bot.slug == "shop-helper" and bot.workspace == workspace


def test_edit_rejects_inverted_thresholds(owner_client, bot):
    data = {
        "name": bot.name,
        "slug": bot.slug,
        "greeting": "Hi",
        "instructions": "",
        "mode": "both",
        "fallback_message": "No idea",
        "provider": "openai",
        "direct_threshold": "0.4",
        "answer_threshold": "0.6",
        "primary_colour": "#123456",
    }
    response = owner_client.post(reverse("bots:edit", args=[bot.pk]), data)
    assert response.status_code == 200
    assert "answer_threshold" in response.context["form"].errors
    data["answer_threshold"] = "0.3"
    response = owner_client.post(reverse("bots:edit", args=[bot.pk]), data)
    assert response.status_code == 302
    bot.refresh_from_db()
    assert bot.mode == "both" and bot.provider == "openai"


def test_inline_edit_returns_only_the_fragment(owner_client, bot):
    url = reverse("bots:field", args=[bot.pk, "greeting"])
    response = owner_client.get(url + "?edit=1", HTTP_HX_REQUEST="true")
    assert b"<html" not in response.content and b'name="value"' in response.content
    response = owner_client.post(url, {"value": "Welcome <b>friend</b>"}, HTTP_HX_REQUEST="true")
    assert response.status_code == 200 and b"<html" not in response.content
    assert b"Welcome &lt;b&gt;friend&lt;/b&gt;" in response.content  # escaped
    bot.refresh_from_db()
    assert bot.greeting == "Welcome <b>friend</b>"


def test_inline_edit_reports_validation_error(owner_client, bot):
    response = owner_client.post(
        reverse("bots:field", args=[bot.pk, "name"]), {"value": ""}, HTTP_HX_REQUEST="true"
    )
    assert response.status_code == 422
    assert b"This field cannot be blank" in response.content
    bot.refresh_from_db()
    assert bot.name == "Acme Help"


def test_inline_edit_of_unknown_field_is_404(owner_client, bot):
    response = owner_client.post(reverse("bots:field", args=[bot.pk, "workspace"]), {"value": "1"})
    assert response.status_code == 404


def test_delete_bot(owner_client, bot):
    response = owner_client.post(reverse("bots:delete", args=[bot.pk]))
    assert response.status_code == 302
    assert not Bot.objects.filter(pk=bot.pk).exists()


@pytest.mark.parametrize(
    "name,method,extra",
    [
        ("bots:detail", "get", ()),
        ("bots:edit", "get", ()),
        ("bots:edit", "post", ()),
        ("bots:field", "get", ("name",)),
        ("bots:field", "post", ("name",)),
        ("bots:delete", "post", ()),
    ],
)
def test_other_tenant_gets_404_for_every_bot_url(other_client, bot, name, method, extra):
    url = reverse(name, args=[bot.pk, *extra])
    response = getattr(other_client, method)(url, {"value": "hacked"} if method == "post" else None)
    assert response.status_code == 404
    bot.refresh_from_db()
    assert bot.name == "Acme Help"


def test_anonymous_is_sent_to_login(client, bot):
    response = client.get(reverse("bots:detail", args=[bot.pk]))
    assert response.status_code == 302 and reverse("accounts:login") in response.url


def test_admin_lists_every_model(admin_client, bot):
    from django.contrib import admin

    for model in admin.site._registry:
        url = reverse(f"admin:{model._meta.app_label}_{model._meta.model_name}_changelist")
        response = admin_client.get(url, {"q": "a"})
        assert response.status_code == 200, url
    assert b"Acme Help" in admin_client.get(reverse("admin:bots_bot_changelist")).content
