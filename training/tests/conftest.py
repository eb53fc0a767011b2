import pytest
from django.core.files.storage import default_storage

from knowledge.models import Source
from training.models import RetrievalTuning


@pytest.fixture(autouse=True)
def media_in_tmp(request, settings, tmp_path):
    """Tuned weights go to a temporary folder, except in e2e tests where a worker writes them."""
    if "celery_worker_process" not in request.fixturenames:
        settings.MEDIA_ROOT = tmp_path / "media"


@pytest.fixture
def auto_tuning(settings):
    settings.RETRIEVAL_TUNING_AUTO = True  # passed on to the worker by child_env()


@pytest.fixture
def cleanup(bot):
    yield
    for source in Source.objects.filter(bot=bot):
        if source.file:
            source.file.storage.delete(source.file.name)
    for weights in RetrievalTuning.objects.filter(bot=bot).values_list("weights", flat=True):
        if weights:
            default_storage.delete(weights)
