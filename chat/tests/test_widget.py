"""The embeddable widget: the script, its config and the share page. (A customer's site that
embeds it, in a browser: tests_browser/test_widget.py.)"""

import re

import pytest
from django.urls import reverse

from bots.models import Bot
from chat.models import Widget

pytestmark = pytest.mark.django_db


def test_widget_script_is_served_as_javascript(client, db):
    response = client.get("/widget.js")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/javascript")
    assert response["Access-Control-Allow-Origin"] == "*"
    # The code, not its header comment (which names data-bot too): it reads the slug from its
    # own <script> tag and builds the bot's chat URL from it.
    code = re.sub(r"/\*.*?\*/", "", response.content.decode(), flags=re.S)
    assert "script.dataset.bot" in code and '"/c/" + slug' in code
    assert "?embed=1" not in code  # the frame URL comes from widget.json


def test_widget_config_reports_colour_position_and_whether_the_site_may_embed(client, bot):
    Widget.objects.filter(bot=bot).update(
        colour="#ff5500", position="bottom-left", allowed_origins="https://shop.example.com"
    )
    url = reverse("chat:widget_config", args=[bot.slug])
    data = client.get(url, HTTP_ORIGIN="https://shop.example.com").json()
    assert (
        data["colour"] == "#ff5500"
        and data["position"] == "bottom-left"
        and data["name"] == "Acme Help"
    )
    assert data["url"] == "http://testserver/c/acme/?embed=1"
    assert data["allowed"] is True
    response = client.get(url, HTTP_ORIGIN="https://evil.example")
    assert response.json()["allowed"] is False
    assert response["Access-Control-Allow-Origin"] == "*"
    assert client.get(reverse("chat:widget_config", args=["nope"])).status_code == 404


def test_share_page_shows_link_snippet_and_settings(owner_client, bot):
    response = owner_client.get(reverse("chat:share", args=[bot.pk]))
    assert response.status_code == 200
    html = response.content.decode()
    assert "http://testserver/c/acme/" in html
    assert (
        '&lt;script src="http://testserver/widget.js" data-bot="acme" async&gt;&lt;/script&gt;'
        in html
    )
    assert 'name="allowed_origins"' in html and 'name="colour"' in html
    assert 'class="tabs"' in html and "Share &amp; embed" in html


def test_saving_widget_settings_changes_the_page_policy(owner_client, client, bot):
    response = owner_client.post(
        reverse("chat:share", args=[bot.pk]),
        {
            "allowed_origins": "https://shop.example.com/\n\nhttps://www.example.org",
            "colour": "#00aa00",
            "position": "bottom-left",
        },
    )
    assert response.status_code == 200 and b"Widget settings saved" in response.content
    widget = Widget.objects.get(bot=bot)
    assert widget.allowed_origins == "https://shop.example.com\nhttps://www.example.org"
    assert (widget.colour, widget.position) == ("#00aa00", "bottom-left")
    csp = client.get(reverse("chat:page", args=[bot.slug]))["Content-Security-Policy"]
    assert "frame-ancestors 'self' https://shop.example.com https://www.example.org" in csp


def test_plain_http_and_top_level_wildcard_origins_are_saved_with_a_warning(owner_client, bot):
    # Accepted silently before (issue 23, 5e); still saved: a test site may need them.
    response = owner_client.post(
        reverse("chat:share", args=[bot.pk]),
        {
            "allowed_origins": "http://shop.example.com\nhttp://localhost:8080\nhttps://*.example",
            "colour": "#00aa00",
            "position": "bottom-right",
        },
        HTTP_HX_REQUEST="true",
    )
    html = response.content.decode()
    assert response.status_code == 200 and "Widget settings saved" in html
    assert html.lstrip().startswith('<section class="card" id="embed">')
    assert "http://shop.example.com is plain HTTP" in html
    assert "http://localhost:8080 is plain HTTP" not in html
    assert "https://*.example lets every site ending in .example embed the chat" in html
    assert Widget.objects.get(bot=bot).allowed_origin_list == [
        "http://shop.example.com",
        "http://localhost:8080",
        "https://*.example",
    ]
    quiet = owner_client.post(
        reverse("chat:share", args=[bot.pk]),
        {
            "allowed_origins": "https://*.example.com",
            "colour": "#00aa00",
            "position": "bottom-right",
        },
    ).content.decode()
    assert "Widget settings saved" in quiet and 'class="warning"' not in quiet


def test_the_share_page_says_what_a_wildcard_origin_matches(owner_client, bot):
    html = owner_client.get(reverse("chat:share", args=[bot.pk])).content.decode()
    assert "allows every subdomain of example.com" in html
    assert "but not example.com itself" in html


def test_widget_config_allows_what_a_wildcard_origin_lets_frame_the_page(client, bot):
    # The CSP let subdomains frame the chat, but widget.json said "not allowed" to them.
    Widget.objects.filter(bot=bot).update(
        allowed_origins="https://*.example.com\nhttps://partner.example.org"
    )
    url = reverse("chat:widget_config", args=[bot.slug])
    for origin, allowed in [
        ("https://shop.example.com", True),
        ("https://eu.shop.example.com", True),
        ("https://partner.example.org", True),
        ("https://example.com", False),
        ("https://evil-example.com", False),
        ("https://shop.example.com.evil.test", False),
        ("https://shop.example.com:8443", False),
        ("http://shop.example.com", False),
    ]:
        data = client.get(url, HTTP_ORIGIN=origin).json()
        assert data["allowed"] is allowed, origin
        assert data["name"] == "Acme Help"


def test_invalid_origins_are_refused_with_a_clear_error(owner_client, bot):
    response = owner_client.post(
        reverse("chat:share", args=[bot.pk]),
        {
            "allowed_origins": "https://shop.example.com/checkout\nhttps://ok.example",
            "colour": "#00aa00",
            "position": "bottom-right",
        },
        HTTP_HX_REQUEST="true",
    )
    assert response.status_code == 422
    html = response.content.decode()
    assert "<html" not in html and 'id="embed"' in html  # only the fragment
    assert "https://shop.example.com/checkout" in html and "scheme and host only" in html
    assert Widget.objects.get(bot=bot).allowed_origins == ""


def test_another_tenant_gets_404_on_the_share_page(other_client, bot):
    assert other_client.get(reverse("chat:share", args=[bot.pk])).status_code == 404
    response = other_client.post(
        reverse("chat:share", args=[bot.pk]),
        {
            "allowed_origins": "https://evil.example",
            "colour": "#000000",
            "position": "bottom-right",
        },
    )
    assert response.status_code == 404
    assert Widget.objects.get(bot=bot).allowed_origins == ""


def test_share_page_needs_login(client, bot):
    response = client.get(reverse("chat:share", args=[bot.pk]))
    assert response.status_code == 302 and "/accounts/login" in response.url


def test_a_new_bot_has_its_widget_settings_with_the_defaults(bot):
    widget = Widget.objects.get(bot=bot)
    assert (widget.allowed_origins, widget.colour, widget.position) == (
        "",
        "#4f46e5",
        "bottom-right",
    )
    assert widget.allowed_origin_list == []
    assert Widget.of(bot) == widget


def test_a_bot_saved_without_signals_gets_its_widget_when_first_read(client, workspace):
    # bulk_create (a restore does it) sends no post_save: the row is made on first read.
    (bot,) = Bot.objects.bulk_create([Bot(workspace=workspace, name="Restored", slug="restored")])
    assert not Widget.objects.filter(bot=bot).exists()
    data = client.get(reverse("chat:widget_config", args=["restored"])).json()
    assert (data["colour"], data["position"]) == ("#4f46e5", "bottom-right")
    assert Widget.objects.filter(bot=bot).count() == 1
    page = client.get(reverse("chat:page", args=["restored"]))
    assert page["Content-Security-Policy"].endswith("frame-ancestors 'self'")
