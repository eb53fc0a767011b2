import pytest
from django.core.management import call_command

from bots.models import Bot
from knowledge import selectors
from knowledge.models import Chunk, FaqEntry, Source

pytestmark = pytest.mark.django_db(transaction=True)


def test_seed_demo_ingests_the_sample_knowledge_once():
    call_command("seed_demo")
    bot = Bot.objects.get(slug="demo")
    sources = list(bot.sources.order_by("name"))
    assert [(s.name, s.kind, s.status) for s in sources] == [
        ("brightside_faq.csv", Source.Kind.CSV, Source.Status.READY),
        ("rental_and_repair_policy.md", Source.Kind.MARKDOWN, Source.Status.READY),
    ]
    assert FaqEntry.objects.filter(bot=bot, source=sources[0]).count() >= 30
    assert sources[0].warnings == []
    assert Chunk.objects.filter(bot=bot, source=sources[1], faq__isnull=True).count() >= 5

    hits = selectors.search(bot=bot, query="how much is it to hire an electric bike for a day?")
    assert hits and "35 EUR" in hits[0].answer

    chunk_ids = set(Chunk.objects.filter(bot=bot).values_list("pk", flat=True))
    call_command("seed_demo")  # second run: nothing re-ingested
    assert set(Chunk.objects.filter(bot=bot).values_list("pk", flat=True)) == chunk_ids
    assert bot.sources.count() == 2


def test_seed_demo_queues_retrieval_tuning_once_when_tuning_is_automatic(settings):
    from training.models import RetrievalTuning

    settings.RETRIEVAL_TUNING_AUTO = True
    call_command("seed_demo")
    call_command("seed_demo")  # a second run folds into the queued tuning

    bot = Bot.objects.get(slug="demo")
    assert list(RetrievalTuning.objects.filter(bot=bot).values_list("status", flat=True)) == [
        RetrievalTuning.Status.QUEUED
    ]
