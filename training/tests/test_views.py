"""The retrieval-tuning card on the knowledge page: fragment, buttons, tenant isolation."""

import pytest
from django.urls import reverse

from knowledge import services
from knowledge.models import Chunk
from knowledge.tests.support import ingest_faqs as ingest
from training import retrieval
from training.models import RetrievalTuning

from .support import ACCOUNT_FAQ

pytestmark = pytest.mark.django_db


@pytest.fixture
def faq_bot(bot):
    ingest(bot, ACCOUNT_FAQ)
    return bot


def test_knowledge_page_shows_the_card_with_tune_now(owner_client, faq_bot):
    response = owner_client.get(reverse("knowledge:page", args=[faq_bot.pk]))
    html = response.content.decode()
    assert response.status_code == 200
    assert 'id="tuning-panel"' in html and "Tune now" in html
    assert "tuned automatically after its FAQ changes" in html


def test_tune_now_queues_one_tuning_and_the_card_polls_while_it_waits(owner_client, faq_bot):
    url = reverse("training:tuning_start", args=[faq_bot.pk])
    response = owner_client.post(url, HTTP_HX_REQUEST="true")
    owner_client.post(url, HTTP_HX_REQUEST="true")  # a double click queues nothing more

    html = response.content.decode()
    assert response.status_code == 200
    tuning = RetrievalTuning.objects.get(bot=faq_bot)
    assert tuning.status == RetrievalTuning.Status.QUEUED
    assert 'hx-trigger="every 2s"' in html and "Queued" in html and "Tune now" not in html


def test_turning_tuning_off_shows_the_switch_back_until_the_base_model_answers(
    owner_client, faq_bot
):
    tuning = retrieval.tuning_request(bot=faq_bot, force=True)
    retrieval.tuning_run(tuning_id=tuning.pk)

    response = owner_client.post(
        reverse("training:tuning_off", args=[faq_bot.pk]), HTTP_HX_REQUEST="true"
    )

    html = response.content.decode()
    assert "Switching off" in html and 'hx-trigger="every 2s"' in html
    assert "Waiting for a worker to re-embed" in html
    faq_bot.refresh_from_db()
    assert faq_bot.retrieval_tuning is False
    # Half-way, as the worker records it on the deployed tuning's row:
    RetrievalTuning.objects.filter(pk=tuning.pk).update(
        stage=retrieval.REVERTING, progress_done=3, progress_total=12
    )
    panel = reverse("training:tuning_panel", args=[faq_bot.pk])
    html = owner_client.get(panel, HTTP_HX_REQUEST="true").content.decode()
    assert "3 of 12 chunks" in html and 'style="width: 25%"' in html

    retrieval.tuning_revert(bot_id=faq_bot.pk)  # what the worker does next
    tuning.refresh_from_db()
    chunks = Chunk.objects.filter(bot=faq_bot).count()
    assert tuning.progress_done == tuning.progress_total == chunks  # it reported as it went
    page = owner_client.get(reverse("knowledge:page", args=[faq_bot.pk])).content.decode()
    assert "Tuning is off" in page and "Switching off" not in page


def test_a_bot_that_cannot_be_tuned_says_why_and_offers_no_button(owner_client, bot):
    services.faq_entry_create(bot=bot, question="Open on Sundays?", answer="No.")
    html = owner_client.get(reverse("knowledge:page", args=[bot.pk])).content.decode()
    assert "Add other phrasings" in html and "Tune now" not in html

    response = owner_client.post(reverse("training:tuning_start", args=[bot.pk]), follow=True)
    assert "Add other phrasings" in response.content.decode()
    assert not RetrievalTuning.objects.exists()


@pytest.mark.parametrize(
    "name,method", [("tuning_panel", "get"), ("tuning_start", "post"), ("tuning_off", "post")]
)
def test_another_owner_gets_404_and_changes_nothing(other_client, faq_bot, name, method):
    response = getattr(other_client, method)(reverse(f"training:{name}", args=[faq_bot.pk]))
    assert response.status_code == 404
    faq_bot.refresh_from_db()
    assert faq_bot.retrieval_tuning is True
    assert not RetrievalTuning.objects.exists()


def test_anonymous_visitors_are_sent_to_log_in(client, faq_bot):
    response = client.post(reverse("training:tuning_start", args=[faq_bot.pk]))
    assert response.status_code == 302 and "/accounts/login/" in response["Location"]
