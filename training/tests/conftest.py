import pytest

# Shared with the browser tests of training's pages (tests_browser/conftest.py).
from .support import auto_tuning, cleanup  # noqa: F401


@pytest.fixture(autouse=True)
def media_in_tmp(request, settings, tmp_path):
    """Tuned weights go to a temporary folder, except in e2e tests where a worker writes them."""
    if "celery_worker_process" not in request.fixturenames:
        settings.MEDIA_ROOT = tmp_path / "media"
