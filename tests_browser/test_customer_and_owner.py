"""What people click: a customer chats (hosted page and the widget on another site), then the
owner reads the conversation and teaches the bot the missing answer, which the next customer gets.

Runs the real stack: uvicorn (ASGI), a Celery worker process, PostgreSQL, Redis, local embeddings.
"""

from __future__ import annotations

import re
import time

import pytest
from playwright.sync_api import expect

from chat.models import Conversation, Message, Widget

pytestmark = [
    pytest.mark.browser,
    pytest.mark.e2e,
    pytest.mark.models,
    pytest.mark.django_db(transaction=True),
]

PASSWORD = "correct-horse-battery-9"  # the root conftest's make_user password
SHIPPING_Q = "How long does shipping take?"
SHIPPING_A = "Orders ship within 2 business days from our Denver warehouse."
GIFT_Q = "Do you sell gift cards?"
GIFT_A = "Yes! Digital gift cards from $10 to $500, delivered by email within minutes."
TIMEOUT = 90_000  # ms; the first answer loads the embedding model inside the server process


def wait_ready(source_id: int, worker, timeout: float = 120) -> None:
    from knowledge.models import Source

    deadline = time.monotonic() + timeout
    while (source := Source.objects.get(pk=source_id)).status != Source.Status.READY:
        assert source.status != Source.Status.FAILED, source.error
        assert time.monotonic() < deadline, worker.log_path.read_text()[-3000:]
        time.sleep(0.5)


def ask(chat, question: str):
    """Type a question in a chat (page or frame) and wait for the bot's finished reply."""
    answers = chat.locator("li.chat-msg.from-bot:not(.greeting)")
    before = answers.count()
    chat.get_by_label("Your question").fill(question)
    chat.get_by_role("button", name="Send", exact=True).click()
    expect(answers).to_have_count(before + 1, timeout=TIMEOUT)
    reply = answers.nth(before)
    # The streamed bubble is replaced by the server's final fragment, which carries the rating form.
    expect(reply.locator("form.chat-rate")).to_be_visible(timeout=TIMEOUT)
    return reply


@pytest.fixture
def shop(user, bot, celery_worker_process, customer_site):
    """The bot knows about shipping (an FAQ entry, ingested by the worker) and may be embedded
    on the customer's site."""
    from knowledge.services import faq_entry_create

    Widget.objects.filter(bot=bot).update(allowed_origins=customer_site)
    entry = faq_entry_create(
        bot=bot, question=SHIPPING_Q, answer=SHIPPING_A, url="https://acme.test/help/shipping"
    )
    wait_ready(entry.source_id, celery_worker_process)
    return bot


def test_customer_chats_owner_adds_missing_answer_next_customer_gets_it(
    browser, asgi_server, customer_site, shop, user, celery_worker_process, screenshot
):
    bot = shop

    # --- A customer on the hosted chat page ---
    customer = browser.new_context(viewport={"width": 900, "height": 900})
    page = customer.new_page()
    page.goto(f"{asgi_server}/c/{bot.slug}/")
    expect(page.get_by_text(bot.greeting)).to_be_visible()

    with page.expect_response(re.compile(r"/ask/$")) as streamed:
        reply = ask(page, SHIPPING_Q)
    assert streamed.value.headers["content-type"].startswith("text/event-stream")
    expect(reply).to_contain_text(SHIPPING_A)
    source = reply.locator(".chat-sources a")
    expect(source).to_have_attribute("href", "https://acme.test/help/shipping")
    reply.get_by_title("Helpful", exact=True).click()
    expect(reply.get_by_title("Helpful", exact=True)).to_have_attribute("aria-pressed", "true")

    missed = ask(page, GIFT_Q)
    expect(missed).to_contain_text(bot.fallback_message)
    missed.get_by_title("Not helpful", exact=True).click()
    expect(missed.get_by_title("Not helpful", exact=True)).to_have_attribute("aria-pressed", "true")

    page.get_by_text("Talk to a human").click()
    page.get_by_placeholder("you@example.com").fill("jane@customer.test")
    page.locator("form.chat-handoff").get_by_role("button", name="Send").click()
    expect(page.locator("#chat-notice")).to_contain_text("passed your conversation to the team")
    screenshot(page, "01-chat-page")

    web = Conversation.objects.get(bot=bot, channel="web")
    assert web.handoff_email == "jane@customer.test" and web.handoff_requested_at
    assert list(web.messages.filter(role="assistant").values_list("path", "rating")) == [
        ("direct", 1),
        ("fallback", -1),
    ]

    # --- Another customer, through the widget on the business's own site ---
    visitor = browser.new_context(viewport={"width": 1100, "height": 800})
    site = visitor.new_page()
    site.goto(customer_site)
    site.get_by_role("button", name=f"Chat with {bot.name}").click()
    frame = site.frame_locator("iframe[data-askhandle=frame]")
    expect(frame.get_by_text(bot.greeting)).to_be_visible()
    widget_reply = ask(frame, "Can I buy a gift card?")
    expect(widget_reply).to_contain_text(bot.fallback_message)
    screenshot(site, "02-widget-on-customer-site")
    assert Conversation.objects.filter(bot=bot, channel="widget").count() == 1

    # --- The owner logs in and reads the conversations ---
    owner = browser.new_context(viewport={"width": 1280, "height": 900})
    dash = owner.new_page()
    dash.goto(f"{asgi_server}/accounts/login/")
    dash.locator("input[name=username]").fill(user.email)
    dash.locator("input[name=password]").fill(PASSWORD)
    dash.get_by_role("button", name="Log in").click()
    dash.get_by_role("link", name=bot.name).first.click()
    dash.locator("nav.tabs").get_by_role("link", name="Conversations").click()
    rows = dash.locator("#conversation-table tbody tr")
    expect(rows).to_have_count(2)
    expect(dash.locator("#conversation-table")).to_contain_text("jane@customer.test")
    screenshot(dash, "03-conversations")

    dash.get_by_label("Search").fill("buy a gift")  # typing filters too (debounced)
    expect(rows).to_have_count(1)
    expect(rows.first).to_contain_text("Can I buy a gift card?")
    dash.get_by_label("Search").fill("")
    expect(rows).to_have_count(2)
    dash.get_by_label("Handed off").check()  # htmx swaps only the table
    expect(rows).to_have_count(1)
    expect(dash).to_have_url(re.compile(r"handoff=on"))
    expect(dash.get_by_label("Handed off")).to_be_checked()  # the form itself was not replaced
    dash.get_by_role("link", name=SHIPPING_Q).click()
    expect(dash.locator(".transcript")).to_contain_text(SHIPPING_A)
    expect(dash.locator(".transcript")).to_contain_text("Direct FAQ answer")
    expect(dash.locator(".transcript")).to_contain_text("Fallback (unanswered)")
    expect(dash.get_by_role("link", name="jane@customer.test")).to_be_visible()
    screenshot(dash, "04-conversation")

    # --- ...and teaches the bot the answer it was missing ---
    dash.locator("nav.tabs").get_by_role("link", name="Insights").click()
    group = dash.locator("article.qgroup").filter(has_text="gift card")
    expect(group).to_have_count(1, timeout=TIMEOUT)
    expect(group).to_contain_text("asked 2×")
    expect(dash.locator("#chart-activity")).to_be_visible()
    expect(dash.locator("#chart-paths")).to_be_visible()
    screenshot(dash, "05-insights")
    dash.get_by_text("7 days").click()  # htmx swaps the body; the charts are drawn again
    expect(dash).to_have_url(re.compile(r"days=7"))
    expect(dash.locator("#chart-activity")).to_be_visible()
    # The charts are drawn again on htmx:afterSettle, a moment after the swap shows the canvas.
    dash.wait_for_function(
        "Chart.getChart('chart-activity')?.data.labels.length === 7", timeout=TIMEOUT
    )
    group = dash.locator("article.qgroup").filter(has_text="gift card")
    group.get_by_label("Your answer").fill(GIFT_A)
    group.get_by_role("button", name="Add an answer").click()
    expect(dash.locator("article.qgroup.resolved")).to_contain_text("Answer added")
    screenshot(dash, "06-insights-answer-added")

    from knowledge.models import FaqEntry

    entry = FaqEntry.objects.get(bot=bot, answer=GIFT_A)
    assert entry.question in (GIFT_Q, "Can I buy a gift card?")
    assert {entry.question, *entry.alternate_questions} == {GIFT_Q, "Can I buy a gift card?"}
    wait_ready(entry.source_id, celery_worker_process)

    # --- The next customer asks again and gets the new answer ---
    again = ask(page, GIFT_Q)
    expect(again).to_contain_text(GIFT_A)
    screenshot(page, "07-chat-new-answer")
    last = Message.objects.filter(conversation=web, role="assistant").last()
    assert last.path == "direct" and last.sources[0]["faq_id"] == entry.pk

    for context in (customer, visitor, owner):
        context.close()


def test_owner_sees_finished_empty_states_before_any_chat(
    browser, asgi_server, user, bot, screenshot
):
    owner = browser.new_context(viewport={"width": 1280, "height": 900})
    dash = owner.new_page()
    dash.goto(f"{asgi_server}/accounts/login/?next=/bots/{bot.pk}/conversations/")
    dash.locator("input[name=username]").fill(user.email)
    dash.locator("input[name=password]").fill(PASSWORD)
    dash.get_by_role("button", name="Log in").click()
    expect(dash.get_by_role("heading", name="No conversations yet")).to_be_visible()
    screenshot(dash, "08-conversations-empty")
    dash.locator("nav.tabs").get_by_role("link", name="Insights").click()
    expect(dash.get_by_role("heading", name="No conversations in the last 30 days")).to_be_visible()
    expect(dash.get_by_role("heading", name="Nothing left unanswered")).to_be_visible()
    screenshot(dash, "09-insights-empty")
    owner.close()
