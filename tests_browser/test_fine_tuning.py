"""What an owner does with fine-tuning, in Debian's chromium, with a real worker: build the
training set, read the estimate, launch a local LoRA run, watch it, deploy it, chat with the
tuned model on the hosted page, roll back to the base model."""

import pytest
from playwright.sync_api import expect

from knowledge.tests.factories import SHOP_FAQ
from knowledge.tests.support import ingest_faqs
from providers.local import ADAPTER_FILES
from training.models import ChatTuning

pytestmark = [pytest.mark.browser, pytest.mark.e2e]
PASSWORD = "correct-horse-battery-9"  # conftest.make_user
TIMEOUT = 180_000


@pytest.fixture
def tiny_runs(monkeypatch, settings):
    """Small runs in the web server and the worker (child_env copies the environment)."""
    for name, value in {
        "ASKHANDLE_CHAT_TUNING_MAX_STEPS": "6",
        "ASKHANDLE_CHAT_TUNING_BATCH_SIZE": "2",
        "ASKHANDLE_CHAT_TUNING_MIN_EXAMPLES": "4",
        "ASKHANDLE_CHAT_TUNING_CHECKPOINT_STEPS": "3",
        "ASKHANDLE_TRAINING_THREADS": "1",
    }.items():
        monkeypatch.setenv(name, value)
    settings.CHAT_TUNING_MIN_EXAMPLES = 4


@pytest.fixture
def chat_tuning_cleanup(bot):
    """Deletes the runs' adapters and training sets (stored where the worker can read them)."""
    yield
    from django.core.files.storage import default_storage

    for run in ChatTuning.objects.filter(bot=bot):
        for name in ADAPTER_FILES:
            default_storage.delete(f"{run.adapter}/{name}")
        if run.training_file:
            default_storage.delete(run.training_file)


def test_owner_tunes_deploys_chats_and_rolls_back(
    tiny_runs,
    browser,
    asgi_server,
    celery_worker_process,
    user,
    bot,
    chat_tuning_cleanup,
    screenshot,
):
    ingest_faqs(bot, SHOP_FAQ)
    page = browser.new_context(viewport={"width": 1280, "height": 1000}).new_page()
    page.goto(f"{asgi_server}/accounts/login/?next=/bots/{bot.pk}/training/fine-tuning/")
    page.locator("input[name=username]").fill(user.email)
    page.locator("input[name=password]").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    expect(page.locator("#ct-serving")).to_contain_text("no fine-tuned model is deployed")

    page.get_by_role("button", name="Build training set").click()
    expect(page.locator("#ct-issues")).to_have_text("No problems found.", timeout=60_000)
    expect(page.locator("#ct-estimate")).to_contain_text("Tokens × epochs")
    screenshot(page, "finetune-01-training-set")

    page.get_by_role("button", name="Launch fine-tuning").click()
    run_card = page.locator("#ct-run")
    expect(run_card).to_contain_text("Run ")
    expect(run_card.locator(".badge")).to_have_text("Training", timeout=TIMEOUT)
    expect(run_card.locator("#ct-progress")).to_contain_text("Step", timeout=TIMEOUT)
    screenshot(page, "finetune-02-running")
    expect(run_card.locator(".badge")).to_have_text("Ready to deploy", timeout=TIMEOUT)
    expect(run_card.locator("#ct-loss-chart")).to_be_visible()
    run = ChatTuning.objects.get(bot=bot)
    assert run.status == ChatTuning.Status.READY and len(run.losses) == 6
    screenshot(page, "finetune-03-ready")

    run_card.get_by_role("button", name="Deploy").click()
    expect(page.locator("#ct-serving")).to_contain_text(f"Run {run.pk}")
    screenshot(page, "finetune-04-deployed")

    chat = browser.new_context(viewport={"width": 900, "height": 900}).new_page()
    chat.goto(f"{asgi_server}/c/{bot.slug}/")
    answers = chat.locator("li.chat-msg.from-bot:not(.greeting)")
    chat.get_by_label("Your question").fill("Can I get a refund?")
    chat.get_by_role("button", name="Send", exact=True).click()
    expect(answers).to_have_count(1, timeout=TIMEOUT)
    expect(answers.nth(0).locator("form.chat-rate")).to_be_visible(timeout=TIMEOUT)
    screenshot(chat, "finetune-05-chat")
    from chat.models import Message

    reply = Message.objects.filter(role="assistant").latest("created_at")
    # Six steps teach a 135M model little: whatever it wrote passed the grounding check, or
    # the customer got the owner's own answer or the fallback instead.
    assert reply.path in ("generated", "best_match", "fallback")

    page.get_by_role("button", name="Back to the base model").click()
    expect(page.locator("#ct-serving")).to_contain_text("no fine-tuned model is deployed")
    expect(page.locator(f"#ct-version-{run.pk}")).to_contain_text("Replaced")
    screenshot(page, "finetune-06-back-to-base")
