"""A bot understands its own language: the embedding model, full-text search, the language
of what it was taught, and a change of language that re-reads its knowledge."""

from __future__ import annotations

import pytest
from django.db import connection
from django.urls import reverse

from bots.models import Bot
from bots.services import bot_create, bot_update
from knowledge import reembedding, selectors, services, serving
from knowledge.models import Chunk, Reembedding, Source

pytestmark = pytest.mark.django_db

BAKERY = [
    {
        "question": "Bezorgen jullie ook aan huis?",
        "answer": "Ja, we bezorgen brood en taarten in Utrecht van dinsdag tot zaterdag; "
        "bezorgen kost 4,95 euro.",
        "external_id": "bezorgen",
    },
    {
        "question": "Wat zijn jullie openingstijden?",
        "answer": "De winkel is open van dinsdag tot zaterdag, van 8:00 tot 17:30.",
        "external_id": "open",
    },
    {
        "question": "Hebben jullie glutenvrij brood?",
        "answer": "Ja, elke vrijdag bakken we glutenvrij brood in een aparte oven.",
        "external_id": "glutenvrij",
    },
]


def ingest(bot, entries=BAKERY):
    source = services.faq_entries_import(bot=bot, name="faq", entries=entries, enqueue=False)
    source = services.source_ingest(source_id=source.pk)
    assert source.status == Source.Status.READY, source.error
    return source


def lexemes(bot) -> set[str]:
    with connection.cursor() as cur:
        cur.execute(
            "SELECT DISTINCT word FROM knowledge_chunk, ts_stat("
            "'SELECT search_vector FROM knowledge_chunk WHERE bot_id = ' || %s)",
            [bot.pk],
        )
        return {row[0] for row in cur.fetchall()}


def test_a_dutch_bot_embeds_with_the_multilingual_model_and_searches_in_dutch(workspace):
    bot = bot_create(workspace=workspace, name="Bakkerij", language="nl")
    source = ingest(bot)

    assert serving.embedding_model_for_bot(bot) == "local:multilingual-e5-small"
    assert set(Chunk.objects.filter(bot=bot).values_list("embedding_model", flat=True)) == {
        "local:multilingual-e5-small"
    }
    assert source.language == "nl"
    # Dutch stemming: "bezorgen" is stored as its stem, and "aan" is a Dutch stop word.
    words = lexemes(bot)
    assert "bezorg" in words and "aan" not in words
    hits = selectors.search(bot=bot, query="kunnen jullie een taart bij mij thuis afleveren?")
    assert hits[0].faq_external_id == "bezorgen"
    hits = selectors.search(bot=bot, query="heb je brood zonder gluten")
    assert hits[0].faq_external_id == "glutenvrij"


def test_an_english_bot_keeps_minilm_and_english_text_search(bot):
    ingest(bot, [{"question": "Do you deliver?", "answer": "Yes, every weekday."}])
    assert serving.embedding_model_for_bot(bot) == "local:all-MiniLM-L6-v2"
    assert "deliv" in lexemes(bot)


def test_switching_to_dutch_reembeds_the_knowledge_and_rebuilds_its_text_search(bot):
    ingest(bot)
    assert serving.embedding_model_for_bot(bot) == "local:all-MiniLM-L6-v2"

    with pytest.MonkeyPatch.context() as patch:  # the task queue is not running in this test
        patch.setattr(reembedding, "_enqueue", lambda job_id: None)
        patch.setattr(reembedding, "text_search_rebuild_on_commit", lambda bot_id: None)
        bot_update(bot=bot, language="nl")
    job = Reembedding.objects.get(bot=bot)
    assert (job.from_model, job.to_model) == (
        "local:all-MiniLM-L6-v2",
        "local:multilingual-e5-small",
    )
    bot.refresh_from_db()
    # The old vectors answer until the switch is done.
    assert serving.embedding_model_for_bot(bot) == "local:all-MiniLM-L6-v2"
    assert selectors.search(bot=bot, query="bezorgen")

    assert reembedding.reembedding_run(reembedding_id=job.pk) == Reembedding.Status.DONE
    assert reembedding.text_search_rebuild(bot_id=bot.pk) == 3
    bot.refresh_from_db()
    assert serving.embedding_model_for_bot(bot) == "local:multilingual-e5-small"
    assert "bezorg" in lexemes(bot)
    hits = selectors.search(bot=bot, query="kunnen jullie een taart bij mij thuis afleveren?")
    assert hits[0].faq_external_id == "bezorgen"


def test_between_two_multilingual_languages_only_the_text_search_is_rebuilt(workspace):
    bot = bot_create(workspace=workspace, name="Bakkerij", language="nl")
    ingest(bot)
    rebuilt = []
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(reembedding, "_enqueue", lambda job_id: None)
        patch.setattr(reembedding, "text_search_rebuild_on_commit", rebuilt.append)
        bot_update(bot=bot, language="de")
    assert not Reembedding.objects.filter(bot=bot).exists()  # the same model serves German
    assert rebuilt == [bot.pk]
    reembedding.text_search_rebuild(bot_id=bot.pk)
    # German stemming now: the Dutch stop word "aan" is a word like any other.
    assert "aan" in lexemes(bot)


def test_a_new_bot_speaks_its_language_and_a_change_translates_untouched_defaults(workspace):
    bot = bot_create(workspace=workspace, name="Bakkerij", language="nl")
    assert bot.greeting == "Hoi! Waarmee kan ik je helpen?"
    assert bot.fallback_message.startswith("Sorry, daar weet ik het antwoord nog niet op")

    bot = bot_update(bot=bot, language="de")
    bot.refresh_from_db()
    assert bot.greeting == "Hallo! Wie kann ich Ihnen helfen?"

    bot = bot_update(bot=bot, greeting="Willkommen in der Backstube!")
    bot = bot_update(bot=bot, language="fr")
    bot.refresh_from_db()
    assert bot.greeting == "Willkommen in der Backstube!"  # the owner's own words stay
    assert bot.fallback_message.startswith("Désolé")


def test_the_knowledge_tab_says_when_the_knowledge_is_in_another_language(owner_client, bot):
    ingest(bot)
    url = reverse("knowledge:page", args=[bot.pk])
    page = owner_client.get(url).content.decode()
    assert "Your knowledge looks Dutch; this bot is set to English" in page
    assert 'name="language" value="nl"' in page

    response = owner_client.post(
        reverse("bots:language", args=[bot.pk]), {"language": "nl", "next": url}
    )
    assert response.status_code == 302 and response["Location"] == url
    bot.refresh_from_db()
    assert bot.language == "nl"
    assert Reembedding.objects.filter(bot=bot, to_model="local:multilingual-e5-small").exists()
    page = owner_client.get(url).content.decode()
    assert "Knowledge" in page and "Your knowledge looks" not in page


def test_an_unsupported_language_is_offered_the_multilingual_model(owner_client, bot):
    ingest(
        bot,
        [
            {
                "question": "Fate consegne a domicilio?",
                "answer": "Sì, consegniamo pane e torte a Milano dal martedì al sabato.",
            },
            {
                "question": "Quali sono gli orari di apertura?",
                "answer": "Il negozio è aperto dal martedì al sabato, dalle 8 alle 17:30.",
            },
        ],
    )
    page = owner_client.get(reverse("knowledge:page", args=[bot.pk])).content.decode()
    assert "Your knowledge looks Italian, which is not one of the bot languages" in page
    assert 'name="language" value="mul"' in page
    bot = bot_update(bot=bot, language="mul")
    assert serving.configured_embedding_model(bot) == "local:multilingual-e5-small"
    assert serving.text_search_config(bot) == "simple"


def test_switching_the_language_of_another_workspaces_bot_is_404(other_client, bot):
    response = other_client.post(reverse("bots:language", args=[bot.pk]), {"language": "nl"})
    assert response.status_code == 404
    assert Bot.objects.get(pk=bot.pk).language == "en"


def test_an_unknown_language_is_refused(owner_client, bot):
    response = owner_client.post(reverse("bots:language", args=[bot.pk]), {"language": "xx"})
    assert response.status_code == 400
    assert "Choose one of the bot languages" in response.content.decode()


def test_mixed_and_unsupported_languages_get_an_answer_or_an_honest_fallback(workspace):
    from chat.answering import answer

    bot = bot_create(workspace=workspace, name="Bakkerij", language="nl")
    ingest(bot)
    for question in (
        "do you bezorgen taarten at home?",  # Dutch and English mixed
        "配達はしていますか？",  # Japanese: no bot language
        "¿tenéis pan sin gluten?",  # Spanish to a Dutch bot
        "🍰🍰🍰",
    ):
        result = answer(bot, question, generate=False)
        assert result.path in ("direct", "best_match", "fallback"), (question, result.path)
        assert result.text
    assert answer(bot, "heb je brood zonder gluten?").sources[0].faq_id is not None
