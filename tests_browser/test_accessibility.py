"""Accessibility: axe-core finds no serious or critical violation on any dashboard page, in every
dashboard language, nor on the chat pages (the demo bots' too); the chat and the dashboard work
from the keyboard. One browser, one login per run; the owner switches language with the top
bar's menu. Screenshots of the English pages go to /tmp/screens (ASKHANDLE_SCREENS)."""

from __future__ import annotations

import json
import os

import pytest
from django.conf import settings
from django.urls import reverse
from playwright.sync_api import expect

from bots.services import bot_update
from conftest import SCREENS

from .a11y import BLOCKING, axe_results, format_violations
from .seeding import (
    seed_calibration,
    seed_comparison,
    seed_conversations,
    seed_knowledge,
)

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

PASSWORD = "correct-horse-battery-9"
LANGUAGES = [code for code, _name in settings.LANGUAGES]
IMPACTS = ("critical", "serious", "moderate", "minor")
# The dashboard languages whose pages are also photographed (e.g. "nl,de" to look at them).
SCREENED = os.environ.get("ASKHANDLE_A11Y_SCREENS", "en").split(",")


def log_in(page, base: str, email: str) -> None:
    page.goto(f"{base}/accounts/login/")
    page.locator("input[name=username]").fill(email)
    page.locator("input[name=password]").fill(PASSWORD)
    page.locator("form.card button[type=submit]").click()
    page.wait_for_url(f"{base}/bots/")


def choose_language(page, code: str) -> None:
    """The top bar's language menu, as an owner uses it (the page reloads in that language)."""
    with page.expect_navigation():
        page.select_option("#lang-select", code)
    expect(page.locator("html")).to_have_attribute("lang", code)


def dashboard_pages(bot, conversation, knowledge) -> dict[str, str]:
    args = [bot.pk]
    return {
        "bots": reverse("bots:list"),
        "overview": reverse("bots:detail", args=args),
        "knowledge": reverse("knowledge:page", args=args),
        "chunks": reverse("knowledge:source_chunks", args=[bot.pk, knowledge["source"].pk]),
        "faq-edit": reverse("knowledge:faq_edit", args=[bot.pk, knowledge["entry"].pk]),
        "fine-tuning": reverse("training:chat_tuning", args=args),
        "test": reverse("chat:playground", args=args),
        "compare": reverse("chat:compare", args=args),
        "conversations": reverse("chat:conversations", args=args),
        "conversation": reverse("chat:conversation", args=[bot.pk, conversation.public_id]),
        "insights": reverse("chat:insights", args=args),
        "share": reverse("chat:share", args=args),
        "settings": reverse("bots:edit", args=args),
        "start": reverse("chat:start", args=args),
        "new-bot": reverse("bots:create"),
        "team": reverse("accounts:team"),
        "new-workspace": reverse("accounts:workspace_create"),
    }


SIGNED_OUT_PAGES = {
    "login": "/accounts/login/",
    "signup": "/accounts/signup/",
    "password-reset": "/accounts/password-reset/",
}


def check(page, url: str, problems: dict, key: str, figures: dict | None = None) -> None:
    """axe on one page: serious or critical violations go to `problems`; the count of every
    violation by impact to `figures` (the run's summary, written beside the screenshots)."""
    page.goto(url)
    page.wait_for_load_state("load")
    found = axe_results(page)
    if figures is not None:
        figures[key] = {impact: sum(v["impact"] == impact for v in found) for impact in IMPACTS}
        figures[key]["rules"] = sorted(f"{v['id']} ({v['impact']})" for v in found)
    if blocking := [v for v in found if v["impact"] in BLOCKING]:
        problems[key] = format_violations(blocking)


def test_every_dashboard_page_in_every_language_has_no_serious_accessibility_violations(
    browser, asgi_server, user, bot, screenshot
):
    from chat.management.commands.seed_demo import Command

    seed_conversations(bot)
    knowledge = seed_knowledge(bot)
    seed_calibration(bot)
    seed_comparison(bot, knowledge["entry"])
    conversation = bot.conversations.order_by("-created_at").first()
    demo = Command()._owner_and_bot()
    demo_nl = Command()._dutch_bot(demo.workspace)
    pages = dashboard_pages(bot, conversation, knowledge)

    context = browser.new_context(viewport={"width": 1280, "height": 900}, bypass_csp=True)
    page = context.new_page()
    problems: dict[str, str] = {}
    figures: dict[str, dict] = {}
    checked = 0
    for code in LANGUAGES:  # signed out: the language cookie
        page.goto(f"{asgi_server}/accounts/login/")
        choose_language(page, code)
        for path in SIGNED_OUT_PAGES.values():
            check(page, asgi_server + path, problems, f"{path} ({code})", figures)
            checked += 1
    log_in(page, asgi_server, user.email)
    for code in LANGUAGES:  # signed in: the owner's choice, kept on the profile
        choose_language(page, code)
        for name, path in pages.items():
            check(page, asgi_server + path, problems, f"{name} ({code})", figures)
            checked += 1
            if code in SCREENED:
                screenshot(page, f"a11y-{name}" if code == "en" else f"a11y-{name}-{code}")
    assert checked == len(LANGUAGES) * (len(pages) + len(SIGNED_OUT_PAGES))

    chat = context.new_page()
    for language in LANGUAGES:  # the bot's language, whatever the owner's
        bot_update(bot=bot, language=language)
        key = f"chat page ({language})"
        check(chat, f"{asgi_server}/c/{bot.slug}/", problems, key, figures)
    for demo_bot in (demo, demo_nl):  # the demo bots' own colours
        key = f"demo chat page /c/{demo_bot.slug}/"
        check(chat, f"{asgi_server}/c/{demo_bot.slug}/", problems, key, figures)
        screenshot(chat, f"a11y-chat-{demo_bot.slug}")
    SCREENS.mkdir(parents=True, exist_ok=True)
    (SCREENS / "axe-figures.json").write_text(json.dumps(figures, indent=1))
    assert not problems, "\n\n".join(f"{p}\n{v}" for p, v in problems.items())
    context.close()


def test_the_chat_and_the_dashboard_work_from_the_keyboard(browser, asgi_server, user, bot):
    bot_update(bot=bot, language="nl")
    context = browser.new_context(viewport={"width": 900, "height": 800})
    chat = context.new_page()
    chat.goto(f"{asgi_server}/c/{bot.slug}/")
    # Tab order: the hand-off toggle in the header, then the question, then Send.
    chat.keyboard.press("Tab")
    expect(chat.get_by_text("Praat met een mens")).to_be_focused()
    chat.keyboard.press("Enter")  # opens the hand-off panel
    expect(chat.get_by_label("Laat je e-mailadres achter")).to_be_visible()
    chat.keyboard.press("Tab")
    expect(chat.get_by_label("Laat je e-mailadres achter")).to_be_focused()
    chat.keyboard.press("Shift+Tab")
    chat.keyboard.press("Enter")  # closes it again
    chat.keyboard.press("Tab")
    expect(chat.get_by_label("Je vraag")).to_be_focused()
    chat.keyboard.press("Tab")
    expect(chat.get_by_role("button", name="Verstuur", exact=True)).to_be_focused()
    # An empty question is refused in Dutch, announced by the alert region.
    chat.get_by_label("Je vraag").focus()
    chat.keyboard.press("Enter")
    expect(chat.get_by_label("Je vraag")).to_be_focused()

    dash = context.new_page()
    log_in(dash, asgi_server, user.email)
    dash.goto(f"{asgi_server}/bots/{bot.pk}/")
    dash.keyboard.press("Tab")  # the first stop is the skip link
    skip = dash.get_by_role("link", name="Skip to content")
    expect(skip).to_be_focused()
    expect(skip).to_be_in_viewport()
    dash.keyboard.press("Enter")
    expect(dash.locator("main#main")).to_be_focused()
    # From main, Tab walks the breadcrumbs, the header buttons and the tabs, then the checklist.
    stops = []
    for _ in range(40):
        dash.keyboard.press("Tab")
        stops.append(dash.evaluate("document.activeElement.textContent.trim()"))
        if "Paste or upload your FAQ" in stops[-1]:
            break
    assert "Paste or upload your FAQ" in stops[-1], stops
    assert stops.index("Overview") < stops.index("Settings") < len(stops) - 1
    dash.keyboard.press("Enter")
    expect(dash).to_have_url(f"{asgi_server}/bots/{bot.pk}/start/")
    context.close()
