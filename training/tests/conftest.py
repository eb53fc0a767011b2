import pytest

from knowledge.tests.factories import SHOP_FAQ
from knowledge.tests.support import ingest_faqs

# Shared with the browser tests of training's pages (tests_browser/conftest.py).
from .support import auto_tuning, cleanup  # noqa: F401


@pytest.fixture
def small_sets(settings):
    """Chat fine-tuning accepts a set as small as the shop FAQ's."""
    settings.CHAT_TUNING_MIN_EXAMPLES = 4


@pytest.fixture
def shop(bot):
    """The bot with the shop FAQ ingested."""
    ingest_faqs(bot, SHOP_FAQ)
    return bot


@pytest.fixture(autouse=True)
def media_in_tmp(request, settings, tmp_path):
    """Tuned weights go to a temporary folder, except in e2e tests where a worker writes them."""
    if "celery_worker_process" not in request.fixturenames:
        settings.MEDIA_ROOT = tmp_path / "media"
