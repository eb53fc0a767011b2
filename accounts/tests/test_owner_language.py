"""The dashboard speaks its user's language: the browser's at first (Accept-Language), then the
one they choose in the top bar, kept on their profile and applied at every login. A bot's public
pages keep the bot's language whatever the visitor's dashboard language."""

import pytest
from django.test import Client
from django.urls import reverse

from accounts.models import Profile
from bots.services import bot_update

pytestmark = pytest.mark.django_db


def lang(response) -> str:
    page = response.content.decode()
    return page.split('<html lang="', 1)[1].split('"', 1)[0]


def test_the_dashboard_follows_the_browser_until_the_owner_chooses(owner_client):
    page = owner_client.get(reverse("bots:list"), headers={"accept-language": "nl,en;q=0.5"})
    assert lang(page) == "nl" and page["Content-Language"] == "nl"
    assert 'id="lang-select"' in page.content.decode()

    response = owner_client.post(
        reverse("accounts:language"), {"language": "de", "next": reverse("bots:list")}
    )
    assert response.status_code == 302 and response.url == reverse("bots:list")
    page = owner_client.get(reverse("bots:list"), headers={"accept-language": "nl"})
    assert lang(page) == "de" and page["Content-Language"] == "de"


def test_the_choice_is_kept_on_the_profile_and_applied_at_the_next_login(user):
    first = Client()
    first.force_login(user)
    first.post(reverse("accounts:language"), {"language": "fr"})
    assert Profile.objects.get(user=user).language == "fr"

    # Another browser that prefers Spanish: logging in brings the owner's French.
    second = Client(headers={"accept-language": "es"})
    assert lang(second.get(reverse("accounts:login"))) == "es"
    response = second.post(
        reverse("accounts:login"),
        {"username": user.username, "password": "correct-horse-battery-9"},
    )
    assert response.status_code == 302
    assert lang(second.get(reverse("bots:list"))) == "fr"


def test_a_signed_out_visitor_choice_is_a_cookie_only(client, user):
    response = client.post(
        reverse("accounts:language"), {"language": "es", "next": reverse("accounts:login")}
    )
    assert response.status_code == 302 and response.cookies["django_language"].value == "es"
    assert lang(client.get(reverse("accounts:login"))) == "es"
    assert not Profile.objects.exists()


def test_an_unknown_language_or_a_foreign_next_is_refused(owner_client):
    assert owner_client.post(reverse("accounts:language"), {"language": "xx"}).status_code == 400
    response = owner_client.post(
        reverse("accounts:language"), {"language": "nl", "next": "https://evil.example/"}
    )
    assert response.status_code == 302 and response.url == "/"


def test_a_dutch_owner_sees_an_english_bots_chat_page_in_english(owner_client, bot):
    owner_client.post(reverse("accounts:language"), {"language": "nl"})
    page = owner_client.get(
        reverse("chat:page", args=[bot.slug]), headers={"accept-language": "nl"}
    )
    assert lang(page) == "en" and page["Content-Language"] == "en"
    assert ">Send</button>" in page.content.decode()
    # ...and the dashboard around it stays Dutch.
    assert lang(owner_client.get(reverse("bots:detail", args=[bot.pk]))) == "nl"


def test_an_english_owner_sees_a_german_bots_chat_page_and_widget_in_german(owner_client, bot):
    bot_update(bot=bot, language="de")
    page = owner_client.get(reverse("chat:page", args=[bot.slug]))
    assert lang(page) == "de" and page["Content-Language"] == "de"
    assert ">Senden</button>" in page.content.decode()
    config = owner_client.get(reverse("chat:widget_config", args=[bot.slug]))
    assert config.json()["lang"] == "de" and config["Content-Language"] == "de"
    assert lang(owner_client.get(reverse("bots:detail", args=[bot.pk]))) == "en"


def test_public_chat_responses_do_not_vary_on_cookies(client, bot):
    response = client.get(reverse("chat:widget_config", args=[bot.slug]))
    assert "Cookie" not in response.get("Vary", "")


def test_the_invitation_email_is_in_the_inviters_dashboard_language(owner_client, mailoutbox):
    owner_client.post(reverse("accounts:language"), {"language": "de"})
    response = owner_client.post(
        reverse("accounts:team"), {"email": "kim@example.com", "role": "member"}
    )
    assert response.status_code == 302
    (mail,) = mailoutbox
    assert mail.subject == "Sie sind zu Acme Inc auf AskHandle eingeladen"
    assert mail.body.startswith("Hallo,") and "Der Link funktioniert einmal" in mail.body
    page = owner_client.get(reverse("accounts:team")).content.decode()
    assert "Einladung an kim@example.com gesendet" in page  # the flash message too


def test_the_activation_email_is_in_the_browsers_language(client, mailoutbox):
    client.post(
        reverse("accounts:signup"),
        {"workspace_name": "Bakkerij", "email": "jan@example.nl", "password": "a-long-pass-7!"},
        headers={"accept-language": "nl"},
    )
    (mail,) = mailoutbox
    assert mail.subject == "Rond het aanmaken van je AskHandle-account af"
    assert mail.body.startswith("Hoi,") and "Activeer het account hier:" in mail.body


def test_dates_and_messages_follow_the_owners_language(owner_client, user):
    from django.utils import formats, translation

    owner_client.post(reverse("accounts:language"), {"language": "de"})
    form = {
        "name": "Hilfe",
        "greeting": "Hallo!",
        "mode": "rag",
        "fallback_message": "Das weiß ich nicht.",
        "provider": "local",
        "primary_colour": "#4f46e5",
    }
    response = owner_client.post(reverse("bots:create"), form)
    page = owner_client.get(response.url).content.decode()
    assert "„Hilfe“ ist bereit." in page and "Übersicht" in page
    joined = user.memberships.get().created_at
    with translation.override("de"):
        date = formats.date_format(joined, "DATE_FORMAT")
    assert f"dabei seit {date}" in owner_client.get(reverse("accounts:team")).content.decode()
