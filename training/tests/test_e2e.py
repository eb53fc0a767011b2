"""End to end with a real Celery worker: an uploaded FAQ is ingested, the worker tunes retrieval on
it by itself, and the next answer (in this process) uses the tuned model the worker stored."""

import json

import pytest
from django.urls import reverse

from chat.answering import answer
from conftest import wait_for
from knowledge.tests.factories import upload
from training.models import RetrievalTuning

from .support import ACCOUNT_FAQ

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


# The wait below must end before pytest's timeout, so a slow run fails with the worker's log
# (the suite's 300 s timeout fired first under load, with no log to read).
@pytest.mark.timeout(480)
def test_an_uploaded_faq_is_tuned_by_the_worker_and_answers_with_the_tuned_model(
    auto_tuning, celery_worker_process, owner_client, bot, cleanup
):
    jsonl = "\n".join(json.dumps(entry) for entry in ACCOUNT_FAQ)
    response = owner_client.post(
        reverse("knowledge:source_add", args=[bot.pk]), {"file": upload("cards.jsonl", jsonl)}
    )
    assert response.status_code == 302

    tuning = wait_for(
        lambda: RetrievalTuning.objects.filter(
            bot=bot, status__in=["deployed", "failed", "skipped"]
        ).first(),
        400,
        "the worker to tune retrieval after the ingest",
        celery_worker_process.log_path,
    )
    assert tuning.status == RetrievalTuning.Status.DEPLOYED, tuning.message
    assert tuning.reason == "cards.jsonl changed"
    bot.refresh_from_db()
    assert bot.embedding_state.tuned_embedding_model == tuning.model_name

    panel = owner_client.get(
        reverse("training:tuning_panel", args=[bot.pk]), HTTP_HX_REQUEST="true"
    )
    html = panel.content.decode()
    assert "Tuned" in html and tuning.model_name in html and "every 2s" not in html

    # This process has never seen the model: it loads the weights the worker stored.
    result = answer(bot, "please unlock my card again", generate=False)
    assert result.answered and result.retrieved[0]["title"] in (
        "How do I unfreeze my card?",
        *ACCOUNT_FAQ[1]["example_questions"],
    )
