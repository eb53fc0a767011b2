"""Reads over knowledge shared by several callers. `search()` is the retrieval entry point.

Retrieval is hybrid: a vector search (cosine, pgvector) and a full-text search (`search_vector`)
per bot, fused with weighted reciprocal rank fusion. An FAQ entry is one result however many
phrasings it has: its `score` is the cosine similarity between the query and the mean of its
phrasings' embeddings (the entry's centroid), which ranked and refused better than the best single
phrasing on the CLINC150 DEV split (benchmarks/faq_bench.py; figures in bots/answer.py).
`score` is what answer thresholds compare; the fusion value only orders results.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from django.conf import settings
from django.db import connection, transaction

import providers

from .models import Chunk, Source

# Partial HNSW indexes that exist (knowledge/migrations/0002): model -> dimensions of the cast.
# A query uses one only when it filters on the same embedding_model literal and orders by the
# same cast expression.
HNSW_INDEXED = {"local:all-MiniLM-L6-v2": 384}
HNSW_EF_SEARCH = 100

# Weighted RRF. Tuned on CLINC150 DEV: every text weight above ~0.01 lowered top-1 accuracy
# (0.02: -0.9 pt, 0.1: -3.3 pt), because short intent-style questions share words with the wrong
# entries. At this weight the text list breaks near-ties between vector ranks; a match found by
# text alone ranks after the vector candidates. Raise it for document-heavy bots once a labelled
# document set exists to tune it on.
RRF_K = 60
VECTOR_WEIGHT = 1.0
TEXT_WEIGHT = 0.01

# How many chunks each list fetches per requested result: FAQ entries have several phrasings
# each, so the vector list must be deeper than `limit` to see `limit` distinct entries.
CANDIDATES_PER_RESULT = 8
MIN_CANDIDATES = 40
# Up to this many chunks an exact scan of the bot's rows takes a few ms and is always right;
# above it the HNSW index answers (benchmarks/retrieval_latency.py).
EXACT_MAX_CHUNKS = 2000
# Full-text matches ranked per query: a common word can match most of a big bot.
TEXT_SCAN_LIMIT = 200


@dataclass
class Hit:
    chunk_id: int
    faq_id: int | None
    title: str
    text: str
    answer: str  # the FAQ answer for FAQ chunks, else the chunk text
    url: str
    score: float  # cosine similarity in [-1, 1]: entry centroid for FAQs, the chunk for documents
    phrasing_score: float = 0.0  # cosine of the best-matching chunk (phrasing) itself
    text_rank: int | None = None  # 1-based position in the full-text list, None if absent
    vector_rank: int | None = None
    fused: float = 0.0  # ranking value only; not comparable across queries
    source_name: str = ""
    faq_external_id: str = ""


@lru_cache(maxsize=max(1, settings.QUERY_EMBED_CACHE_SIZE))
def _embed_cached(provider: str, model: str, query: str) -> tuple[float, ...]:
    return tuple(providers.get_provider(provider).embed([query], model=model or None)[0])


def embed_query(bot, query: str) -> list[float]:
    """The query's embedding. Customers ask the same questions again and again, so each web or
    worker process keeps the last QUERY_EMBED_CACHE_SIZE of them (0 turns the cache off)."""
    if not settings.QUERY_EMBED_CACHE_SIZE:
        return providers.for_bot(bot).embed([query], model=bot.embedding_model or None)[0]
    return list(_embed_cached(bot.provider, bot.embedding_model, query))


def embed_queries(bot, queries: list[str]) -> list[list[float]]:
    """Batch form of embed_query, for callers answering many questions (benchmarks)."""
    return providers.for_bot(bot).embed(list(queries), model=bot.embedding_model or None)


def _vector_literal(vector) -> str:
    return "[" + ",".join(repr(float(x)) for x in vector) + "]"


# Sources are passed as an id list (a handful per bot): a join to knowledge_source made the
# planner probe the source table once per candidate chunk.
READY_CHUNKS = "FROM knowledge_chunk c WHERE c.bot_id = %s AND c.embedding_model = %s AND c.source_id = ANY(%s)"


def _vector_candidates(
    bot_id: int, model: str, sources: list[int], qvec: str, n: int, *, approximate: bool
) -> list[tuple[int, int | None, float]]:
    """(chunk_id, faq_id, cosine distance) of the bot's n nearest chunks."""
    params = [bot_id, model, sources]
    dims = HNSW_INDEXED.get(model)
    if dims and approximate:
        with transaction.atomic(), connection.cursor() as cur:
            # pgvector filters after the HNSW scan: iterative scanning keeps going until enough
            # rows of this bot are found. With sorting off the planner takes the index even when
            # the bot's share of the table makes a btree scan + sort look cheaper (it is not:
            # 10k exact distances cost ~40 ms).
            cur.execute(
                "SELECT set_config('hnsw.iterative_scan', 'relaxed_order', true), "
                "set_config('hnsw.ef_search', %s, true), set_config('enable_sort', 'off', true)",
                [str(max(HNSW_EF_SEARCH, n))],
            )
            # The model name is a literal (client-side binding), so the planner matches the
            # partial index predicate.
            cur.execute(
                f"SELECT c.id, c.faq_id, c.embedding::vector({dims}) <=> %s::vector({dims}) AS d "
                f"{READY_CHUNKS} ORDER BY c.embedding::vector({dims}) <=> %s::vector({dims}) "
                "LIMIT %s",
                [qvec, *params, qvec, n],
            )
            rows = cur.fetchall()
        if len(rows) == n:
            return sorted(rows, key=lambda r: r[2])  # relaxed_order may be slightly unordered
        # Too few rows: the scan gave up (hnsw.max_scan_tuples) before finding this bot's
        # chunks. An exact scan settles it.
    with connection.cursor() as cur:
        cur.execute(
            f"SELECT c.id, c.faq_id, c.embedding <=> %s::vector AS d {READY_CHUNKS} "
            "ORDER BY d LIMIT %s",
            [qvec, *params, n],
        )
        return cur.fetchall()


def _text_candidates(
    bot_id: int, model: str, sources: list[int], query: str, qvec: str, n: int
) -> list[tuple[int, int | None, float]]:
    """(chunk_id, faq_id, cosine distance) of chunks matching any of the query's words, best ts_rank_cd first."""
    # plainto_tsquery ANDs every word; a question rarely shares all its words with the right
    # chunk, so the words are ORed and ts_rank_cd rewards chunks that match more (and closer) ones.
    # A common word can match most of a big bot: ranking stops at TEXT_SCAN_LIMIT matches so the
    # cost stays bounded (the vector side carries recall; this list adds exact-term matches).
    with connection.cursor() as cur:
        cur.execute(
            "WITH q AS (SELECT to_tsquery('english', "
            "replace(plainto_tsquery('english', %s)::text, ' & ', ' | ')) AS q), "
            "matches AS MATERIALIZED (SELECT c.id, ts_rank_cd(c.search_vector, q.q) AS r "
            "FROM knowledge_chunk c, q WHERE c.bot_id = %s AND c.embedding_model = %s "
            "AND c.source_id = ANY(%s) AND c.search_vector @@ q.q LIMIT %s), "
            "top AS (SELECT id, r FROM matches ORDER BY r DESC, id LIMIT %s) "
            "SELECT c.id, c.faq_id, c.embedding <=> %s::vector FROM top "
            "JOIN knowledge_chunk c ON c.id = top.id ORDER BY top.r DESC, top.id",
            [query, bot_id, model, sources, TEXT_SCAN_LIMIT, n, qvec],
        )
        return cur.fetchall()


def _centroid_scores(faq_ids: list[int], model: str, qvec: str) -> dict[int, float]:
    """Cosine between the query and each FAQ entry's mean phrasing embedding.

    Providers return unit vectors, so the mean of an entry's phrasings points at their centroid.
    Computed in SQL: parsing vectors into Python cost ~1 ms per candidate entry.
    """
    if not faq_ids:
        return {}
    with connection.cursor() as cur:
        cur.execute(
            "SELECT faq_id, 1 - (avg(embedding) <=> %s::vector) FROM knowledge_chunk "
            "WHERE faq_id = ANY(%s) AND embedding_model = %s GROUP BY faq_id",
            [qvec, faq_ids, model],
        )
        return {faq_id: float(similarity) for faq_id, similarity in cur.fetchall()}


def search(*, bot, query: str, limit: int = 5, vector=None) -> list[Hit]:
    """The bot's `limit` best results for `query`, best first; FAQ entries appear once.

    `vector` is the query's embedding when the caller already has it (batched embedding).
    """
    model = providers.embedding_model_for_bot(bot)
    if vector is None:
        vector = embed_query(bot, query)
    qv = np.asarray(vector, dtype=np.float32)
    qv = qv / (np.linalg.norm(qv) or 1.0)
    qvec = _vector_literal(qv)
    n = max(MIN_CANDIDATES, limit * CANDIDATES_PER_RESULT)

    # Every source that has chunks answers, whatever its status: a source being re-ingested,
    # re-embedded or whose re-ingest failed keeps its last good chunks until a successful
    # replace (knowledge.services swaps them atomically).
    ready = list(Source.objects.filter(bot=bot, chunk_count__gt=0).values_list("pk", "chunk_count"))
    if not ready:
        return []
    sources = [pk for pk, _ in ready]
    approximate = sum(count for _, count in ready) > EXACT_MAX_CHUNKS
    vector_rows = _vector_candidates(bot.pk, model, sources, qvec, n, approximate=approximate)
    text_rows = _text_candidates(bot.pk, model, sources, query, qvec, n) if query.strip() else []
    similarity = {cid: 1.0 - float(d) for cid, _, d in [*vector_rows, *text_rows]}
    if not similarity:
        return []
    faq_of = {cid: faq_id for cid, faq_id, _ in [*vector_rows, *text_rows]}

    def key(cid: int) -> tuple[str, int]:
        return ("faq", faq_of[cid]) if faq_of[cid] else ("chunk", cid)

    # One result per key, represented by its best-matching chunk.
    best: dict[tuple[str, int], int] = {}
    for cid in sorted(similarity, key=lambda c: -similarity[c]):
        best.setdefault(key(cid), cid)
    centroid = _centroid_scores([k[1] for k in best if k[0] == "faq"], model, qvec)
    score = {
        k: centroid.get(k[1], similarity[cid]) if k[0] == "faq" else similarity[cid]
        for k, cid in best.items()
    }

    vector_order = sorted({key(cid) for cid, _, _ in vector_rows}, key=lambda k: -score[k])
    text_order = list(dict.fromkeys(key(cid) for cid, _, _ in text_rows))
    fused = dict.fromkeys(best, 0.0)
    for rank, k in enumerate(vector_order, 1):
        fused[k] += VECTOR_WEIGHT / (RRF_K + rank)
    for rank, k in enumerate(text_order, 1):
        fused[k] += TEXT_WEIGHT / (RRF_K + rank)
    vector_rank = {k: i for i, k in enumerate(vector_order, 1)}
    text_rank = {k: i for i, k in enumerate(text_order, 1)}

    top = sorted(best, key=lambda k: (-fused[k], -score[k]))[:limit]
    chunks = (
        Chunk.objects.select_related("faq", "source")
        .defer("embedding", "search_vector", "faq__alternate_questions")
        .in_bulk([best[k] for k in top])
    )
    hits = []
    for k in top:
        chunk = chunks[best[k]]
        faq = chunk.faq
        hits.append(
            Hit(
                chunk_id=chunk.pk,
                faq_id=chunk.faq_id,
                title=chunk.title or (faq.question if faq else "") or chunk.source.name,
                text=chunk.text,
                answer=faq.answer if faq else chunk.text,
                url=(faq.url if faq else "") or chunk.source.url,
                score=score[k],
                phrasing_score=similarity[best[k]],
                text_rank=text_rank.get(k),
                vector_rank=vector_rank.get(k),
                fused=fused[k],
                source_name=chunk.source.name,
                faq_external_id=faq.external_id if faq else "",
            )
        )
    return hits
