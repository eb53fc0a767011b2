"""A new owner invites a colleague from the Team page; the colleague accepts from the e-mail
(console backend, read from uvicorn's log), chooses a password and sees the same bots."""

from __future__ import annotations

import re
import time

import pytest
from playwright.sync_api import expect

from .a11y import axe_violations, format_violations

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

PASSWORD = "correct-horse-battery-9"


def invitation_link(server_log, email: str, timeout: float = 30) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        text = server_log.read_text()
        if f"To: {email}" in text and (
            m := re.search(r"(http://\S+/accounts/invitation/\S+/)", text)
        ):
            return m.group(1)
        time.sleep(0.3)
    raise AssertionError(server_log.read_text()[-3000:])


def test_owner_invites_a_colleague_who_sees_the_same_bots_and_nothing_else(
    browser, asgi_server, user, bot, other_bot, tmp_path, screenshot
):
    owner = browser.new_context(viewport={"width": 1280, "height": 900}, bypass_csp=True)
    page = owner.new_page()
    page.goto(f"{asgi_server}/accounts/login/")
    page.locator("input[name=username]").fill(user.email)
    page.locator("input[name=password]").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Team").click()
    page.get_by_label("E-mail address").fill("sam@acme.test")
    page.get_by_role("button", name="Send invitation").click()
    expect(page.locator(".messages")).to_contain_text("Invitation sent to sam@acme.test")
    expect(page.locator("#invitations")).to_contain_text("sam@acme.test")
    screenshot(page, "team-1-invited")
    if found := axe_violations(page):
        pytest.fail(format_violations(found))

    colleague = browser.new_context(viewport={"width": 1280, "height": 900})
    sam = colleague.new_page()
    sam.goto(invitation_link(tmp_path / "uvicorn.log", "sam@acme.test"))
    expect(sam.get_by_role("heading", name="Join Acme Inc")).to_be_visible()
    screenshot(sam, "team-2-invitation")
    sam.get_by_label("Choose a password").fill("sams-own-pass-phrase-1")
    sam.get_by_role("button", name="Create account and join").click()
    expect(sam.get_by_role("heading", name="Your bots")).to_be_visible()
    cards = sam.locator("a.bot-card")
    expect(cards).to_have_count(1)
    expect(cards.first).to_contain_text(bot.name)
    assert sam.goto(f"{asgi_server}/bots/{other_bot.pk}/").status == 404  # another workspace's

    page.reload()
    expect(page.locator("#members")).to_contain_text("sam@acme.test")
    screenshot(page, "team-3-members")
    owner.close()
    colleague.close()
