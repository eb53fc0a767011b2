"""A Dutch-speaking and a German-speaking owner read the pages where they build, test and share a
bot entirely in their own language: Overview, Knowledge, Settings and Compare modes of a bot with
real knowledge (the demo FAQs ingested, its thresholds fitted, a comparison run through the real
pipeline), and the Test tab with an answer. No English sentence of the catalogues is left on
them. Screenshots go to /tmp/shots
(ASKHANDLE_SHOTS) for a person to look at."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
from django.core.files import File
from django.urls import reverse
from django.utils import translation
from playwright.sync_api import expect

from askhandle.tests.support import catalogue, po_path

ANSWER_TIMEOUT = 90_000  # ms, as the other browser tests wait for a first answer

pytestmark = [pytest.mark.browser, pytest.mark.models, pytest.mark.django_db(transaction=True)]

SHOTS = Path(os.environ.get("ASKHANDLE_SHOTS", "/tmp/shots"))
FIXTURES = Path(__file__).resolve().parent.parent / "knowledge" / "fixtures"
PASSWORD = "correct-horse-battery-9"
PAGES = {
    "overview": "bots:detail",
    "knowledge": "knowledge:page",
    "settings": "bots:edit",
    "compare": "chat:compare",
}
# English sentences of the catalogues long enough not to be a name, a code or a bot's own words.
ENGLISH = sorted(
    {
        e["msgid"]
        for e in catalogue(po_path("nl"))
        if re.fullmatch(r"[A-Z][a-z ,']{18,}\.?", e["msgid"])
    }
)


def bot_with_knowledge(workspace, *, name: str, language: str, faq: str):
    """A bot taught one of the demo FAQs as an owner would, read synchronously; its thresholds
    fitted and one comparison of its modes run (what the worker does after an upload)."""
    from bots.services import bot_create
    from chat import evaluation
    from knowledge.services import source_add, source_ingest
    from training.calibration import calibration_run

    bot = bot_create(workspace=workspace, name=name, language=language)
    with (FIXTURES / faq).open("rb") as handle:
        source = source_add(bot=bot, upload=File(handle, name=Path(faq).name), enqueue=False)
    assert source_ingest(source_id=source.pk).status == "ready"
    calibration_run(bot_id=bot.pk)
    with translation.override("en"):  # as a worker runs it
        run = evaluation.evaluation_start(bot=bot)
    evaluation.evaluation_run(evaluation_id=run.pk)
    bot.refresh_from_db()
    assert bot.calibration.fit and bot.evaluations.get().status == "done"
    return bot


@pytest.mark.parametrize(
    ("language", "bot_name", "bot_language", "faq", "words"),
    [
        ("nl", "Brightside Bikes Help", "en", "brightside_faq.csv", ["Overzicht", "Kennis"]),
        ("de", "De Zoete Inval", "nl", "demo_nl/faq.csv", ["Übersicht", "Wissen"]),
    ],
)
def test_an_owner_reads_overview_knowledge_settings_and_compare_in_their_language(
    browser, asgi_server, user, workspace, language, bot_name, bot_language, faq, words
):
    bot = bot_with_knowledge(workspace, name=bot_name, language=bot_language, faq=faq)
    context = browser.new_context(viewport={"width": 1280, "height": 900}, locale=language)
    page = context.new_page()
    page.goto(f"{asgi_server}/accounts/login/")
    expect(page.locator("html")).to_have_attribute("lang", language)  # the browser's language
    page.locator("input[name=username]").fill(user.email)
    page.locator("input[name=password]").fill(PASSWORD)
    page.locator("form.card button[type=submit]").click()
    page.wait_for_url(f"{asgi_server}/bots/")
    SHOTS.mkdir(parents=True, exist_ok=True)
    leftovers = {}
    for name, url_name in PAGES.items():
        page.goto(asgi_server + reverse(url_name, args=[bot.pk]))
        page.wait_for_load_state("load")
        expect(page.locator("html")).to_have_attribute("lang", language)
        text = page.locator("body").inner_text()
        if found := [msgid for msgid in ENGLISH if msgid in text]:
            leftovers[name] = found
        page.screenshot(path=str(SHOTS / f"{language}-{name}.png"), full_page=True)
    # The Test tab with an answer: its path, why, the retrieved knowledge and the thresholds.
    page.goto(asgi_server + reverse("chat:playground", args=[bot.pk]))
    page.locator("#pg-suggested .chip").first.click()
    # An answer: on a busy machine the server may still be loading the embedding model.
    expect(page.locator("#pg-result")).to_be_visible(timeout=ANSWER_TIMEOUT)
    text = page.locator("body").inner_text()
    if found := [msgid for msgid in ENGLISH if msgid in text]:
        leftovers["test"] = found
    page.screenshot(path=str(SHOTS / f"{language}-test.png"), full_page=True)
    assert not leftovers, f"English left on the {language} pages: {leftovers}"
    nav = page.get_by_role("navigation", name=re.compile(".")).filter(has_text=words[0])
    expect(nav.first).to_contain_text(words[1])
    context.close()
