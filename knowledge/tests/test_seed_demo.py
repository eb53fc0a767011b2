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

    chunk_ids = set(Chunk.objects.values_list("pk", flat=True))
    call_command("seed_demo")  # second run: nothing re-ingested
    assert set(Chunk.objects.values_list("pk", flat=True)) == chunk_ids
    assert bot.sources.count() == 2


def test_seed_demo_adds_a_dutch_bot_that_understands_dutch():
    from chat.answering import answer
    from knowledge import serving

    call_command("seed_demo")
    bot = Bot.objects.get(slug="demo-nl")
    assert bot.language == "nl" and bot.workspace == Bot.objects.get(slug="demo").workspace
    assert serving.embedding_model_for_bot(bot) == "local:multilingual-e5-small"
    source = bot.sources.get()
    assert (source.status, source.language) == (Source.Status.READY, "nl")
    assert FaqEntry.objects.filter(bot=bot).count() >= 15
    assert bot.greeting.startswith("Hoi!")

    hits = selectors.search(bot=bot, query="kunnen jullie een taart thuisbezorgen in Leusden?")
    assert hits and "Leusden" in hits[0].answer
    # The framing around the owner's answer is Dutch too.
    result = answer(bot, "kan ik bij jullie met mijn pinpas betalen?")
    assert result.answered and result.sources[0].title == "Hoe kan ik betalen?"
    assert "Here is what I found" not in result.text


def test_seed_demo_queues_retrieval_tuning_once_when_tuning_is_automatic(settings):
    from training.models import RetrievalTuning

    settings.RETRIEVAL_TUNING_AUTO = True
    call_command("seed_demo")
    call_command("seed_demo")  # a second run folds into the queued tuning

    bot = Bot.objects.get(slug="demo")
    assert list(RetrievalTuning.objects.filter(bot=bot).values_list("status", flat=True)) == [
        RetrievalTuning.Status.QUEUED
    ]
