"""What an owner sees of retrieval tuning, in Debian's chromium, with a real worker."""

import json
import re

import pytest
from playwright.sync_api import expect

from training.models import RetrievalTuning
from training.tests.support import ACCOUNT_FAQ

pytestmark = [pytest.mark.browser, pytest.mark.e2e]
PASSWORD = "correct-horse-battery-9"  # conftest.make_user


def test_owner_watches_the_worker_tune_retrieval_after_an_upload(
    auto_tuning,
    browser,
    asgi_server,
    celery_worker_process,
    user,
    bot,
    cleanup,
    screenshot,
    tmp_path,
):
    page = browser.new_context(viewport={"width": 1280, "height": 900}).new_page()
    page.goto(f"{asgi_server}/accounts/login/?next=/bots/{bot.pk}/knowledge/")
    page.locator("input[name=username]").fill(user.email)
    page.locator("input[name=password]").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    card = page.locator("#tuning-panel")
    expect(card).to_contain_text("Add other phrasings")  # nothing to tune yet

    path = tmp_path / "cards.jsonl"
    path.write_text("\n".join(json.dumps(entry) for entry in ACCOUNT_FAQ))
    page.get_by_label("A file").set_input_files(str(path))
    page.get_by_role("button", name="Add", exact=True).click()
    expect(page.locator("tr.kn-source .badge.ok")).to_have_text("Ready", timeout=90_000)

    # The worker queued a tuning when the upload was ready (training takes 10+ s); the card
    # shows it after a reload and then polls itself until it is deployed.
    page.reload()
    expect(card.locator(".badge")).to_have_text(re.compile("Queued|Training"))
    expect(card.locator(".progress")).to_be_visible()
    screenshot(page, "tuning-01-running")
    expect(card.locator(".badge")).to_have_text("Tuned", timeout=240_000)
    expect(card).to_contain_text("15 phrasings of 4 entries")
    expect(card.get_by_role("button", name="↻ Tune again")).to_be_visible()
    screenshot(page, "tuning-02-deployed")

    page.once("dialog", lambda dialog: dialog.accept())
    card.get_by_role("button", name="Turn off").click()
    # The worker puts the base model's vectors back; the card polls until it has.
    expect(card.locator(".badge")).to_have_text("Off", timeout=60_000)
    expect(card).to_contain_text("Tuning is off")
    bot.refresh_from_db()
    assert bot.embedding_state.tuned_embedding_model == "" and bot.retrieval_tuning is False
    assert RetrievalTuning.objects.get(bot=bot).status == RetrievalTuning.Status.REPLACED
