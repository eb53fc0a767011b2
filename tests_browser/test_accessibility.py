"""Accessibility: axe-core finds no serious or critical violation on the main dashboard pages
and the chat page; the chat and the dashboard work from the keyboard. Screenshots go to
/tmp/screens (ASKHANDLE_SCREENS)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone
from playwright.sync_api import expect

from bots.models import Conversation, Message
from bots.services import bot_update

from .a11y import axe_violations, format_violations

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

PASSWORD = "correct-horse-battery-9"


def seed_conversations(bot) -> None:
    """A week of chats: answered, a thumbs-down, a hand-off and an unanswered question."""
    rows = [
        (1, [("How long does shipping take?", "direct", 1)], False),
        (2, [("Do you sell gift cards?", "fallback", -1)], True),
        (
            3,
            [("Where is your shop?", "best_match", 1), ("Open on Sunday?", "fallback", None)],
            False,
        ),
        (12, [("Can I pay by invoice?", "fallback", None)], True),
    ]
    for days_ago, turns, handoff in rows:
        when = timezone.now() - timedelta(days=days_ago)
        conv = Conversation.objects.create(bot=bot, channel="web")
        for question, path, rating in turns:
            Message.objects.create(conversation=conv, role="user", text=question)
            Message.objects.create(
                conversation=conv, role="assistant", text="…", path=path, rating=rating
            )
        if handoff:
            Conversation.objects.filter(pk=conv.pk).update(
                handoff_email="jane@example.com", handoff_requested_at=when
            )
        Conversation.objects.filter(pk=conv.pk).update(created_at=when)
        conv.messages.update(created_at=when)


def log_in(page, base: str, email: str) -> None:
    page.goto(f"{base}/accounts/login/")
    page.locator("input[name=username]").fill(email)
    page.locator("input[name=password]").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_role("heading", name="Your bots")).to_be_visible()


def test_dashboard_and_chat_pages_have_no_serious_accessibility_violations(
    browser, asgi_server, user, bot, screenshot
):
    seed_conversations(bot)
    context = browser.new_context(viewport={"width": 1280, "height": 900}, bypass_csp=True)
    page = context.new_page()
    log_in(page, asgi_server, user.email)
    pages = {
        "a11y-bots": "/bots/",
        "a11y-overview": f"/bots/{bot.pk}/",
        "a11y-team": "/accounts/team/",
        "a11y-share": f"/bots/{bot.pk}/share/",
        "a11y-test": f"/bots/{bot.pk}/test/",
        "a11y-conversations": f"/bots/{bot.pk}/conversations/",
        "a11y-insights": f"/bots/{bot.pk}/insights/",
        "a11y-settings": f"/bots/{bot.pk}/settings/",
        "a11y-start": f"/bots/{bot.pk}/start/",
    }
    problems = {}
    for name, path in pages.items():
        page.goto(asgi_server + path)
        page.wait_for_load_state("networkidle")
        screenshot(page, name)
        if found := axe_violations(page):
            problems[path] = format_violations(found)
    chat = context.new_page()
    for language in ("en", "nl"):
        bot_update(bot=bot, language=language)
        chat.goto(f"{asgi_server}/c/{bot.slug}/")
        screenshot(chat, f"a11y-chat-{language}")
        if found := axe_violations(chat):
            problems[f"/c/{bot.slug}/ ({language})"] = format_violations(found)
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
