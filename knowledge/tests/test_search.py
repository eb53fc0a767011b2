"""Retrieval through the real ingestion, PostgreSQL/pgvector and the local embedding model."""

import numpy as np
import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from knowledge import selectors, vector_indexes
from knowledge.models import Chunk, FaqEntry, Source

from .factories import SHOP_FAQ
from .support import embed, ingest_faqs, ingest_text

pytestmark = pytest.mark.django_db


def test_paraphrase_finds_the_entry_once_scored_by_the_centroid_of_its_phrasings(bot):
    ingest_faqs(bot, SHOP_FAQ)
    hits = selectors.search(bot=bot, query="I want my money back for a jacket", limit=5)

    assert hits[0].faq_external_id == "returns"
    assert hits[0].answer == "Bring it back within 30 days with the receipt."
    faq_ids = [h.faq_id for h in hits]
    assert len(faq_ids) == len(set(faq_ids)) == 3  # one result per entry, not per phrasing
    # score: cosine to the mean of the entry's phrasing embeddings, recomputed here independently.
    phrasings = [SHOP_FAQ[1]["question"], *SHOP_FAQ[1]["example_questions"]]
    centroid = np.mean([embed(p) for p in phrasings], axis=0)
    query = embed("I want my money back for a jacket")
    expected = float(query @ centroid / np.linalg.norm(centroid) / np.linalg.norm(query))
    assert hits[0].score == pytest.approx(expected, abs=1e-4)
    # phrasing_score: the best single phrasing's cosine.
    best_phrasing = max(float(query @ embed(p)) for p in phrasings)
    assert hits[0].phrasing_score == pytest.approx(best_phrasing, abs=1e-4)
    assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)


def test_exact_phrasing_scores_above_an_unrelated_question(bot):
    ingest_faqs(bot, SHOP_FAQ)
    exact = selectors.search(bot=bot, query="Do you repair e-bikes?", limit=1)[0]
    unrelated = selectors.search(bot=bot, query="Who won the football world cup in 1998?", limit=1)[
        0
    ]
    assert exact.faq_external_id == "repairs" and exact.phrasing_score == pytest.approx(
        1.0, abs=1e-4
    )
    assert exact.score > 0.8 > 0.3 > unrelated.score


def test_full_text_finds_an_exact_code_and_reports_its_rank(bot):
    ingest_text(
        bot,
        "printer.md",
        "# Error XK-4471\n\nThe toner cartridge is empty: replace it.\n\n"
        "# Paper jams\n\nOpen the rear tray and pull the sheet out gently.\n\n"
        "# Wi-Fi\n\nHold the Wi-Fi button for five seconds to pair the printer.\n",
    )
    hits = selectors.search(bot=bot, query="what does XK-4471 mean", limit=3)
    top = hits[0]
    assert "XK-4471" in top.title + top.text
    assert top.text_rank == 1 and top.vector_rank is not None
    assert top.faq_id is None and top.answer == top.text and top.source_name == "printer.md"


def rival_chunks(other_bot, text, count, jitter=0.0):
    """`count` READY chunks of another bot, all at (or, with jitter, right around) the embedding of
    `text`. Exact duplicates are the worst case for an HNSW graph: they crowd each other's
    neighbour lists, and the scan can get stuck among them."""
    rival = Source.objects.create(
        bot=other_bot,
        kind=Source.Kind.TEXT,
        name="rival",
        status=Source.Status.READY,
        chunk_count=count,
    )
    rng = np.random.default_rng(0)
    vectors = embed(text) + jitter * rng.standard_normal((count, 384)) / np.sqrt(384)
    Chunk.objects.bulk_create(
        Chunk(
            bot=other_bot,
            source=rival,
            position=i,
            title=text,
            text=text,
            embedding=vectors[i] / np.linalg.norm(vectors[i]),
            embedding_model="local:all-MiniLM-L6-v2",
        )
        for i in range(count)
    )
    with connection.cursor() as cur:
        cur.execute("ANALYZE knowledge_chunk")


@pytest.mark.parametrize("exact_max", [2000, 0], ids=["exact", "hnsw"])
def test_a_bot_never_sees_another_bots_chunks_even_when_all_nearest_vectors_are_theirs(
    bot, other_bot, settings, exact_max
):
    settings.KNOWLEDGE_EXACT_SEARCH_MAX_CHUNKS = exact_max
    ingest_faqs(bot, SHOP_FAQ[:2])
    query = "Do you repair e-bikes?"
    rival_chunks(other_bot, query, 600)  # every nearest neighbour of the query is the rival's
    ingest_faqs(other_bot, SHOP_FAQ)
    for b in (bot, other_bot):  # what the task queued after each ingest does
        vector_indexes.sync(b.pk)
    assert bool(vector_indexes.existing(bot.pk)) == (exact_max == 0)

    own_ids = set(Chunk.objects.filter(bot=bot).values_list("pk", flat=True))
    hits = selectors.search(bot=bot, query=query, limit=5)
    assert {h.chunk_id for h in hits} <= own_ids
    assert {h.faq_id for h in hits} == set(
        FaqEntry.objects.filter(bot=bot).values_list("pk", flat=True)
    )
    other_hits = selectors.search(bot=other_bot, query=query, limit=5)
    assert other_hits and not {h.chunk_id for h in other_hits} & own_ids


def test_large_bot_path_returns_own_rows_when_another_bot_owns_the_nearest_vectors(
    bot, other_bot, settings
):
    """The bot's own HNSW index returns `limit` of its own rows, as many as an exact scan would,
    although the 600 nearest vectors in the table are another bot's."""
    settings.KNOWLEDGE_EXACT_SEARCH_MAX_CHUNKS = 0
    query = "Where can I park my car near the shop?"
    entries = [
        {
            "faq_id": f"q{i}",
            "question": f"Question number {i} about bicycles",
            "answer": f"Answer {i}.",
        }
        for i in range(60)
    ]
    ingest_faqs(bot, entries)
    rival_chunks(other_bot, query, 600, jitter=0.5)  # cosine ~0.9 to the query: all nearer
    vector_indexes.sync(bot.pk)
    vector_indexes.sync(other_bot.pk)
    own_ids = set(Chunk.objects.filter(bot=bot).values_list("pk", flat=True))
    with CaptureQueriesContext(connection) as queries:
        hits = selectors.search(bot=bot, query=query, limit=5)
    assert any("::vector(384) <=>" in q["sql"] for q in queries)  # the index path was taken
    assert len(hits) == 5 and {h.chunk_id for h in hits} <= own_ids
    exact = selectors._vector_candidates(
        bot.pk,
        "local:all-MiniLM-L6-v2",
        [bot.sources.get().pk],
        selectors._vector_literal(embed(query)),
        40,
        approximate=False,
    )
    assert {h.chunk_id for h in hits} <= {row[0] for row in exact}


def test_vector_query_matches_the_bots_own_hnsw_index(bot, settings):
    settings.KNOWLEDGE_EXACT_SEARCH_MAX_CHUNKS = 0
    ingest_faqs(bot, SHOP_FAQ)
    assert vector_indexes.sync(bot.pk)["created"]
    with CaptureQueriesContext(connection) as queries:
        selectors.search(bot=bot, query="When do you open?", limit=3)
    vector_sql = next(q["sql"] for q in queries if "ORDER BY c.embedding::vector(384)" in q["sql"])
    with connection.cursor() as cur:
        cur.execute("SET enable_sort = off")
        cur.execute("EXPLAIN " + vector_sql)
        plan = "\n".join(row[0] for row in cur.fetchall())
    assert vector_indexes.index_name(bot.pk, "local:all-MiniLM-L6-v2") in plan


def test_source_being_reingested_keeps_answering_from_its_last_good_chunks(bot):
    source = ingest_faqs(bot, SHOP_FAQ)
    before = selectors.search(bot=bot, query="When do you open?")
    assert before
    for status in (Source.Status.PROCESSING, Source.Status.FAILED):
        Source.objects.filter(pk=source.pk).update(status=status)
        after = selectors.search(bot=bot, query="When do you open?")
        assert [h.chunk_id for h in after] == [h.chunk_id for h in before]
    Chunk.objects.filter(source=source).delete()
    Source.objects.filter(pk=source.pk).update(chunk_count=0)  # a source never ingested
    assert selectors.search(bot=bot, query="When do you open?") == []


def test_chunks_of_another_embedding_model_are_ignored(bot):
    ingest_faqs(bot, SHOP_FAQ)
    Chunk.objects.filter(bot=bot).update(embedding_model="openai:text-embedding-3-small")
    assert selectors.search(bot=bot, query="When do you open?") == []


def test_empty_bot_and_blank_query_return_nothing_without_error(bot):
    assert selectors.search(bot=bot, query="Anything there?") == []
    ingest_faqs(bot, SHOP_FAQ)
    assert len(selectors.search(bot=bot, query="   ", limit=2)) == 2  # vector side still works


def test_precomputed_vector_gives_the_same_results(bot):
    ingest_faqs(bot, SHOP_FAQ)
    question = "can you fix an electric bicycle"
    [vector] = selectors.embed_queries(bot, [question])
    plain = selectors.search(bot=bot, query=question, limit=3)
    given = selectors.search(bot=bot, query=question, limit=3, vector=vector)
    assert [(h.chunk_id, round(h.score, 5)) for h in plain] == [
        (h.chunk_id, round(h.score, 5)) for h in given
    ]
    assert plain[0].faq_external_id == "repairs"


def test_repeated_question_is_embedded_once_per_process(bot, openai_server, settings):
    bot.provider = "openai"
    bot.save()
    first = selectors.embed_query(bot, "Where is my order?")
    again = selectors.embed_query(bot, "Where is my order?")
    other = selectors.embed_query(bot, "Do you ship abroad?")
    assert first == again != other
    assert openai_server.requests.count("/v1/embeddings") == 2
    settings.QUERY_EMBED_CACHE_SIZE = 0  # off: every call reaches the model
    selectors.embed_query(bot, "Where is my order?")
    assert openai_server.requests.count("/v1/embeddings") == 3
