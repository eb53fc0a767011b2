"""What an owner clicks on the Knowledge page, in Debian's chromium, with a real worker."""

import pytest
from playwright.sync_api import expect

from knowledge.models import FaqEntry, Source

pytestmark = [pytest.mark.browser, pytest.mark.e2e]
PASSWORD = "correct-horse-battery-9"  # conftest.make_user

CSV = (
    "question,answer,category\n"
    "How long does delivery take?,Standard delivery takes 2-3 working days.,Delivery\n"
    "Do you repair e-bikes?,Yes: Bosch and Shimano systems.,Repairs\n"
    "this row has no answer\n"
)


def test_owner_uploads_a_csv_and_edits_the_faq(
    browser, asgi_server, celery_worker_process, user, bot, screenshot, tmp_path
):  # noqa: F811
    page = browser.new_context(viewport={"width": 1280, "height": 900}).new_page()
    page.goto(f"{asgi_server}/accounts/login/?next=/bots/{bot.pk}/")
    page.locator("input[name=username]").fill(user.email)
    page.locator("input[name=password]").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    page.locator("nav.tabs").get_by_role("link", name="Knowledge").click()
    expect(page.get_by_role("heading", name="Nothing learnt yet")).to_be_visible()
    expect(page.get_by_role("heading", name="No FAQ entries yet")).to_be_visible()
    screenshot(page, "knowledge-01-empty")

    csv_path = tmp_path / "shop-faq.csv"
    csv_path.write_text(CSV)
    page.get_by_label("A file").set_input_files(str(csv_path))
    page.get_by_role("button", name="Add", exact=True).click()
    row = page.locator("tr.kn-source", has_text="shop-faq.csv")
    expect(row).to_be_visible()
    # The row polls every second until the worker has read the file.
    expect(row.locator(".badge.ok")).to_have_text("Ready", timeout=90_000)
    expect(row).to_contain_text("1 warning")
    row.get_by_text("1 warning").click()
    expect(row).to_contain_text("Line 4: missing answer; row skipped.")
    screenshot(page, "knowledge-02-ingested")
    assert Source.objects.get(bot=bot).chunk_count == 2

    page.get_by_text("+ Add an entry").click()
    page.get_by_label("Question", exact=True).fill("Do you rent cargo bikes?")
    page.get_by_label("Answer", exact=True).fill("Yes, 45 EUR a day with a child seat.")
    page.get_by_label("Other phrasings").fill("cargo bike hire")
    page.get_by_role("button", name="Save entry").click()
    faq_row = page.locator("#faq-table tbody tr", has_text="Do you rent cargo bikes?")
    expect(faq_row).to_be_visible()
    expect(page.locator("tr.kn-source", has_text="FAQ editor").locator(".badge.ok")).to_have_text(
        "Ready", timeout=60_000
    )

    faq_row.get_by_role("link", name="✎ Edit").click()
    editing = page.locator("tr.kn-editing")
    editing.get_by_label("Answer").fill("Yes, 49 EUR a day with a child seat.")
    screenshot(page, "knowledge-03-editing")
    editing.get_by_role("button", name="Save").click()
    expect(page.locator("#faq-table")).to_contain_text("49 EUR a day")
    assert (
        FaqEntry.objects.get(question="Do you rent cargo bikes?").answer
        == "Yes, 49 EUR a day with a child seat."
    )

    page.get_by_label("Search FAQ entries").fill("nothing like this")
    expect(page.get_by_role("heading", name="No entries match “nothing like this”")).to_be_visible()
    page.get_by_label("Search FAQ entries").fill("cargo")
    expect(page.locator("#faq-table tbody tr")).to_have_count(1)

    page.once("dialog", lambda dialog: dialog.accept())
    page.get_by_label("Select “Do you rent cargo bikes?”").check()
    page.get_by_role("button", name="Delete selected").click()
    expect(page.get_by_role("heading", name="No entries match “cargo”")).to_be_visible()
    assert not FaqEntry.objects.filter(source__kind=Source.Kind.MANUAL).exists()
    screenshot(page, "knowledge-04-after-delete")


def test_owner_switches_embedding_model_and_the_bot_never_stops_answering(
    openai_server, browser, asgi_server, celery_worker_process, user, bot, screenshot, tmp_path
):
    from knowledge.models import Reembedding

    page = browser.new_context(viewport={"width": 1280, "height": 900}).new_page()
    page.goto(f"{asgi_server}/accounts/login/?next=/bots/{bot.pk}/knowledge/")
    page.locator("input[name=username]").fill(user.email)
    page.locator("input[name=password]").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    csv_path = tmp_path / "shop-faq.csv"
    csv_path.write_text(CSV)
    page.get_by_label("A file").set_input_files(str(csv_path))
    page.get_by_role("button", name="Add", exact=True).click()
    expect(page.locator("tr.kn-source .badge.ok")).to_have_text("Ready", timeout=90_000)

    # A model name the service does not have: the switch fails, nothing is lost.
    page.goto(f"{asgi_server}/bots/{bot.pk}/settings/")
    page.get_by_label("Models").select_option("openai")
    page.get_by_label("Embedding model").fill("text-embedding-9-huge")
    page.get_by_role("button", name="Save settings").click()
    expect(page.locator("body")).to_contain_text("keeps answering with the previous model")
    page.goto(f"{asgi_server}/bots/{bot.pk}/knowledge/")
    card = page.locator("#reembed-panel")
    expect(card.locator(".badge.bad")).to_have_text("Failed", timeout=60_000)
    expect(card).to_contain_text("text-embedding-9-huge` does not exist")
    expect(card).to_contain_text("still answers with local:all-MiniLM-L6-v2")
    screenshot(page, "knowledge-05-switch-failed")

    chat = browser.new_context(viewport={"width": 420, "height": 800}).new_page()
    chat.goto(f"{asgi_server}/c/{bot.slug}/")
    chat.get_by_label("Your question").fill("How long does delivery take?")
    chat.get_by_role("button", name="Send", exact=True).click()
    expect(chat.locator("li.chat-msg.from-bot:not(.greeting)").last).to_contain_text(
        "2-3 working days", timeout=60_000
    )

    # The owner corrects the model: this time every chunk moves over, then the card says so.
    page.goto(f"{asgi_server}/bots/{bot.pk}/settings/")
    page.get_by_label("Embedding model").fill("text-embedding-3-small")
    page.get_by_role("button", name="Save settings").click()
    page.goto(f"{asgi_server}/bots/{bot.pk}/knowledge/")
    expect(card.locator(".badge.ok")).to_have_text("Switched", timeout=60_000)
    expect(card).to_contain_text("2 chunks re-embedded")
    screenshot(page, "knowledge-06-switch-done")
    job = Reembedding.objects.filter(bot=bot).first()
    assert job.status == Reembedding.Status.DONE and job.to_model == "openai:text-embedding-3-small"

    chat.get_by_label("Your question").fill("Do you repair e-bikes?")
    chat.get_by_role("button", name="Send", exact=True).click()
    expect(chat.locator("li.chat-msg.from-bot:not(.greeting)").last).to_contain_text(
        "Bosch and Shimano", timeout=60_000
    )
