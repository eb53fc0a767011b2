"""A new owner, from sign-up to a working chat link: sign up, activate from the e-mail, create a
bot, paste an FAQ, watch it being read, try a question drawn from it, copy the link and chat.

Runs the real stack: uvicorn (ASGI, console e-mail backend), a Celery worker process,
PostgreSQL, Redis, the local embedding model.
"""

from __future__ import annotations

import re
import time

import pytest
from playwright.sync_api import expect

from .a11y import axe_violations, format_violations

pytestmark = [
    pytest.mark.browser,
    pytest.mark.e2e,
    pytest.mark.models,
    pytest.mark.django_db(transaction=True),
]

TIMEOUT = 120_000  # ms: the first ingestion and answer load the embedding model
FAQ = """Q: How long does delivery take?
A: Orders arrive in two to three working days.

Q: Can I return a bike?
A: Yes, within 30 days, unridden and in its box.

Q: Do you repair e-bikes?
A: Yes, our workshop repairs every e-bike brand; book a slot online."""


def activation_link(server_log, email: str, timeout: float = 30) -> str:
    """The console e-mail backend prints the activation e-mail into uvicorn's log."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        text = server_log.read_text()
        if f"To: {email}" in text and (
            m := re.search(r"(http://\S+/accounts/activate/\S+/)", text)
        ):
            return m.group(1)
        time.sleep(0.3)
    raise AssertionError(
        f"No activation e-mail in the server log:\n{server_log.read_text()[-3000:]}"
    )


def test_new_owner_goes_from_sign_up_to_a_working_chat_link(
    browser, asgi_server, celery_worker_process, tmp_path, screenshot
):
    started = time.monotonic()
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    context.grant_permissions(["clipboard-read", "clipboard-write"], origin=asgi_server)
    page = context.new_page()

    # --- Sign up, then activate from the e-mail ---
    page.goto(f"{asgi_server}/accounts/signup/")
    page.get_by_label("Business name").fill("Brightside Bikes")
    page.get_by_label("Email").fill("owner@brightside.test")
    page.get_by_label("Password").fill("pedal-power-2026!")
    page.get_by_role("button", name="Create account").click()
    expect(page.get_by_role("heading", name="Check your email")).to_be_visible()
    page.goto(activation_link(tmp_path / "uvicorn.log", "owner@brightside.test"))
    page.get_by_label("Password").fill("pedal-power-2026!")  # proves who signed up
    page.get_by_role("button", name="Activate and log in").click()
    expect(page.get_by_role("heading", name="Your bots")).to_be_visible()

    # --- Create a bot: its Overview shows the three steps ---
    page.get_by_role("link", name="Create your first bot").click()
    page.get_by_label("Name:", exact=True).fill("Brightside Help")
    page.get_by_role("button", name="Create bot").click()
    checklist = page.locator("#getting-started")
    expect(checklist).to_contain_text("Add knowledge")
    expect(checklist).to_contain_text("Test it")
    expect(checklist).to_contain_text("Share it")
    screenshot(page, "journey-1-checklist")

    # --- Paste the FAQ and watch it being read ---
    checklist.get_by_role("link", name="Paste or upload your FAQ").click()
    page.get_by_label("Paste your FAQ").fill(FAQ)
    page.get_by_role("button", name="Teach my bot").click()
    expect(page.locator(".start-source")).to_have_count(1)
    screenshot(page, "journey-2-reading")
    expect(page.locator(".start-source .badge.ok")).to_have_text(
        re.compile("Ready"), timeout=TIMEOUT
    )
    expect(page.locator(".start-source")).to_contain_text("Learnt 3 pieces of knowledge")
    expect(page.locator(".start-source [role=progressbar]")).to_have_attribute(
        "aria-valuenow", "100"
    )

    # --- Questions from its own FAQ, one click to try ---
    chips = page.locator("#start-try .chip")
    expect(chips).to_have_count(3)
    expect(chips.first).to_have_text("How long does delivery take?")
    screenshot(page, "journey-3-ready")
    if found := axe_violations(page):
        pytest.fail(format_violations(found))
    chips.first.click()
    result = page.locator("#pg-result")
    expect(result).to_contain_text("Orders arrive in two to three working days.", timeout=TIMEOUT)
    expect(result.locator(".badge").first).to_have_text("Direct FAQ answer")
    screenshot(page, "journey-4-tested")

    # --- Copy the chat link and use it ---
    page.locator("nav.tabs").get_by_role("link", name="Overview").click()
    expect(page.locator("#overview-figures")).to_be_visible()  # knowledge ready: no checklist
    page.goto(page.url.rstrip("/") + "/start/")
    page.get_by_role("button", name="Copy the chat link").click()
    expect(page.get_by_role("button", name="Copy the chat link")).to_contain_text("Copied")
    link = page.evaluate("navigator.clipboard.readText()")
    assert re.fullmatch(rf"{re.escape(asgi_server)}/c/brightside-help/", link), link

    customer = browser.new_context(viewport={"width": 800, "height": 800}).new_page()
    customer.goto(link)
    customer.get_by_label("Your question").fill("Do you repair e-bikes?")
    customer.get_by_role("button", name="Send", exact=True).click()
    reply = customer.locator("li.chat-msg.from-bot:not(.greeting)")
    expect(reply).to_contain_text("our workshop repairs every e-bike brand", timeout=TIMEOUT)
    screenshot(customer, "journey-5-customer-chat")
    elapsed = time.monotonic() - started
    print(f"sign-up to a working chat link: {elapsed:.0f} s")
    assert elapsed < 300  # "a few minutes", including model loading on a busy machine
    context.close()
