"""Per-bot HNSW indexes (knowledge.vector_indexes) on the real PostgreSQL with pgvector: a large
bot gets its own, search uses it and returns what an exact scan returns, a model switch or a
deleted bot takes its index away, an invalid index is never used, and the worker builds the index
after an ingest without being asked."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from conftest import wait_for
from knowledge import selectors, services, vector_indexes
from knowledge.models import Chunk, Source
from knowledge.reembedding import swap_vectors

from .factories import SHOP_FAQ
from .support import embed, ingest_faqs

MODEL = "local:all-MiniLM-L6-v2"
ENTRIES = [
    {"faq_id": f"q{i}", "question": f"Question {i} about bicycles?", "answer": f"Answer {i}."}
    for i in range(30)
]


def vector_sql(queries) -> list[str]:
    return [q["sql"] for q in queries if "AS d FROM knowledge_chunk c WHERE c.bot_id" in q["sql"]]


@pytest.mark.django_db
def test_only_a_bot_above_the_threshold_gets_an_index_and_its_search_uses_it(
    bot, other_bot, settings
):
    settings.KNOWLEDGE_EXACT_SEARCH_MAX_CHUNKS = 20
    ingest_faqs(bot, ENTRIES + SHOP_FAQ)  # 30+ chunks: above
    ingest_faqs(other_bot, SHOP_FAQ)  # a handful: below
    assert vector_indexes.sync(bot.pk)["created"] == [vector_indexes.index_name(bot.pk, MODEL)]
    assert vector_indexes.sync(other_bot.pk) == {"created": [], "dropped": []}
    assert vector_indexes.sync(bot.pk) == {"created": [], "dropped": []}  # idempotent
    assert list(vector_indexes.existing()) == [vector_indexes.index_name(bot.pk, MODEL)]

    query = "Can I bring a jacket back?"
    with CaptureQueriesContext(connection) as queries:
        hits = selectors.search(bot=bot, query=query, limit=5)
    (sql,) = vector_sql(queries)
    assert "::vector(384) <=>" in sql  # the index's own expression: the index path
    assert hits[0].faq_external_id == "returns"
    source_ids, qvec = [bot.sources.get().pk], selectors._vector_literal(embed(query))
    exact, approximate = (
        selectors._vector_candidates(bot.pk, MODEL, source_ids, qvec, 40, approximate=flag)
        for flag in (False, True)
    )
    assert [r[0] for r in approximate[:10]] == [r[0] for r in exact[:10]]

    with CaptureQueriesContext(connection) as queries:
        selectors.search(bot=other_bot, query=query, limit=5)
    (sql,) = vector_sql(queries)
    assert "::vector(384)" not in sql  # exact scan


@pytest.mark.django_db
def test_a_model_switch_replaces_the_index_and_a_deleted_bot_loses_it(bot, settings):
    settings.KNOWLEDGE_EXACT_SEARCH_MAX_CHUNKS = 10
    ingest_faqs(bot, ENTRIES)
    vector_indexes.sync(bot.pk)
    old = vector_indexes.index_name(bot.pk, MODEL)
    assert list(vector_indexes.existing(bot.pk)) == [old]

    # What a tuning deploy or an embedding switch does: every chunk gets another model's vectors.
    rows = list(Chunk.objects.filter(bot=bot).values_list("pk", "embedding"))
    swap_vectors(bot, "tuned:test-model", [pk for pk, _ in rows], [v for _, v in rows])
    new = vector_indexes.index_name(bot.pk, "tuned:test-model")
    assert vector_indexes.sync(bot.pk) == {"created": [new], "dropped": [old]}

    bot_id = bot.pk
    bot.delete()
    assert vector_indexes.sync(bot_id) == {"created": [], "dropped": [new]}
    assert vector_indexes.existing(bot_id) == {}


@pytest.mark.django_db
def test_an_invalid_index_is_never_used_and_is_rebuilt(bot, settings):
    """A CREATE INDEX CONCURRENTLY killed half-way leaves an INVALID index behind."""
    settings.KNOWLEDGE_EXACT_SEARCH_MAX_CHUNKS = 10
    ingest_faqs(bot, ENTRIES)
    vector_indexes.sync(bot.pk)
    name = vector_indexes.index_name(bot.pk, MODEL)
    with connection.cursor() as cur:
        cur.execute(
            "UPDATE pg_index SET indisvalid = false WHERE indexrelid = to_regclass(%s)", [name]
        )
    assert vector_indexes.existing(bot.pk) == {name: (bot.pk, False)}
    with CaptureQueriesContext(connection) as queries:
        assert selectors.search(bot=bot, query="Question 3 about bicycles?", limit=3)
    assert all("::vector(384)" not in sql for sql in vector_sql(queries))  # scanned exactly
    assert vector_indexes.sync(bot.pk) == {"created": [name], "dropped": [name]}
    assert vector_indexes.existing(bot.pk) == {name: (bot.pk, True)}


@pytest.mark.django_db
def test_a_bot_that_shrank_keeps_its_index_until_half_the_threshold(bot, settings):
    settings.KNOWLEDGE_EXACT_SEARCH_MAX_CHUNKS = 20
    ingest_faqs(bot, ENTRIES)
    vector_indexes.sync(bot.pk)
    ids = list(Chunk.objects.filter(bot=bot).order_by("pk").values_list("pk", flat=True))
    Chunk.objects.filter(pk__in=ids[12:]).delete()  # 12 chunks left: above 10, the index stays
    assert vector_indexes.sync(bot.pk) == {"created": [], "dropped": []}
    Chunk.objects.filter(bot=bot).order_by("pk")[0].delete()
    Chunk.objects.filter(bot=bot).order_by("pk")[0].delete()  # 10 left: dropped
    assert vector_indexes.sync(bot.pk)["dropped"] == [vector_indexes.index_name(bot.pk, MODEL)]


@pytest.fixture
def small_threshold(monkeypatch, settings):
    """The worker reads the threshold from its environment (settings)."""
    monkeypatch.setenv("ASKHANDLE_EXACT_SEARCH_MAX_CHUNKS", "10")
    settings.KNOWLEDGE_EXACT_SEARCH_MAX_CHUNKS = 10


@pytest.mark.e2e
@pytest.mark.django_db(transaction=True)
def test_the_worker_builds_the_index_after_an_ingest_and_drops_it_with_the_source(
    small_threshold, celery_worker_process, bot
):
    source = services.faq_entries_import(bot=bot, name="big", entries=ENTRIES)
    name = vector_indexes.index_name(bot.pk, MODEL)
    wait_for(
        lambda: vector_indexes.existing(bot.pk) == {name: (bot.pk, True)},
        120,
        "the worker to build the bot's index",
        celery_worker_process.log_path,
    )
    assert Source.objects.get(pk=source.pk).status == Source.Status.READY
    services.source_delete(source=source)
    wait_for(
        lambda: vector_indexes.existing(bot.pk) == {},
        60,
        "the worker to drop the index of a bot without chunks",
        celery_worker_process.log_path,
    )
