"""The public chat page and widget speak their bot's language (Bot.language, locale/)."""

from __future__ import annotations

import json
import re

import pytest
from django.urls import reverse
from django.utils.html import escape

from bots.services import bot_update

pytestmark = pytest.mark.django_db


@pytest.fixture
def demo_bot():
    """The demo bot exactly as `seed_demo` creates it (without ingesting its knowledge)."""
    from chat.management.commands.seed_demo import Command

    return Command()._owner_and_bot()


def test_the_demo_bots_page_speaks_dutch_when_set_to_dutch(client, demo_bot):
    page = client.get(reverse("chat:page", args=[demo_bot.slug])).content.decode()
    assert '<html lang="en">' in page and ">Send</button>" in page

    bot_update(bot=demo_bot, language="nl")
    page = client.get(reverse("chat:page", args=[demo_bot.slug])).content.decode()
    assert '<html lang="nl">' in page
    for dutch in (
        ">Verstuur</button>",
        "Praat met een mens",
        "Antwoorden kunnen door AI gegenereerd zijn",
        "Mogelijk gemaakt door AskHandle",
        'placeholder="Stel een vraag…"',
        'aria-label="Je vraag"',
    ):
        assert dutch in page, dutch
    assert ">Send</button>" not in page and "Talk to a human" not in page
    # chat.js's own words come along in the page (json_script), in Dutch.
    strings = json.loads(re.search(r'id="chat-i18n"[^>]*>(.*?)</script>', page, re.S).group(1))
    assert strings["dropped"] == "De verbinding is verbroken. Probeer het opnieuw."
    # The owner's own words are shown as written.
    assert escape(demo_bot.greeting) in page


def test_errors_and_the_widget_speak_the_bots_language(client, demo_bot):
    bot_update(bot=demo_bot, language="nl")
    response = client.post(
        reverse("chat:ask", args=[demo_bot.slug]),
        {"message": "  "},
        headers={"Accept": "application/json"},
    )
    assert response.status_code == 400 and response.json()["error"] == "Typ eerst een vraag."
    response = client.post(
        reverse("chat:handoff", args=[demo_bot.slug]),
        {"email": "not-an-address"},
        headers={"Accept": "application/json"},
    )
    assert response.json()["error"].startswith("Vul een geldig e-mailadres in")
    config = client.get(reverse("chat:widget_config", args=[demo_bot.slug])).json()
    assert config["label"] == f"Chat met {demo_bot.name}" and config["lang"] == "nl"


@pytest.mark.parametrize(
    ("language", "send", "human"),
    [
        ("en", "Send", "Talk to a human"),
        ("nl", "Verstuur", "Praat met een mens"),
        ("de", "Senden", "Mit einem Menschen sprechen"),
        ("fr", "Envoyer", "Parler à une personne"),
        ("es", "Enviar", "Hablar con una persona"),
    ],
)
def test_each_language_has_the_pages_words(client, bot, language, send, human):
    bot_update(bot=bot, language=language)
    page = client.get(reverse("chat:page", args=[bot.slug])).content.decode()
    assert f">{send}</button>" in page and human in page


def test_the_dashboard_is_not_switched_by_a_dutch_chat_page(owner_client, bot):
    bot_update(bot=bot, language="nl")
    owner_client.get(reverse("chat:page", args=[bot.slug]))
    page = owner_client.get(reverse("bots:detail", args=[bot.pk])).content.decode()
    assert '<html lang="en">' in page and "Log out" in page


def test_owner_sets_the_language_in_settings(owner_client, bot):
    page = owner_client.get(reverse("bots:edit", args=[bot.pk])).content.decode()
    assert 'name="language"' in page and "Nederlands" in page
