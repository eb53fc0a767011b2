"""Reads over knowledge shared by several callers. `search()` is the retrieval entry point.

Retrieval is hybrid: a vector search (cosine, pgvector) and a full-text search (`search_vector`)
per bot, fused with weighted reciprocal rank fusion. An FAQ entry is one result however many
phrasings it has: its `score` is the cosine similarity between the query and the mean of its
phrasings' embeddings (the entry's centroid), which ranked and refused better than the best single
phrasing on the CLINC150 DEV split (benchmarks/faq_bench.py).
`score` is what answer thresholds compare; the fusion value only orders results.

A search is three statements: the bot's sources (and whether the bot's own HNSW index is built:
knowledge.vector_indexes; without one the bot's rows are scanned exactly), one statement for the
vector list, the full-text list and the FAQ centroids, and the hits' fields; the index path adds
a settings statement and its commit. Its latency by bot size: benchmarks/retrieval_latency.py.
"""

from __future__ import annotations

import math
import threading
from collections import OrderedDict
from concurrent.futures import Future
from dataclasses import dataclass

import numpy as np
from django.conf import settings
from django.db import connection, transaction

from bots import languages

from . import language_detection, serving, vector_indexes
from .models import Source

# hnsw.ef_search floor: candidates per pass of the graph search (see _ef_search).
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
    question: str = ""  # the FAQ entry's own question (title is the phrasing that matched)


class QueryVectors:
    """The last settings.QUERY_EMBED_CACHE_SIZE question embeddings of this process, keyed by
    (provider, model, question); thread-safe (web workers' answer threads and the batcher's
    thread both use it)."""

    def __init__(self) -> None:
        self._items: OrderedDict[tuple[str, str, str], tuple[float, ...]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key) -> list[float] | None:
        with self._lock:
            vector = self._items.get(key)
            if vector is not None:
                self._items.move_to_end(key)
        return list(vector) if vector is not None else None

    def put(self, key, vector) -> None:
        size = settings.QUERY_EMBED_CACHE_SIZE
        with self._lock:
            self._items[key] = tuple(vector)
            self._items.move_to_end(key)
            while len(self._items) > max(0, size):
                self._items.popitem(last=False)

    def clear(self) -> None:
        with self._lock:
            self._items.clear()


query_vectors = QueryVectors()
EMBED_WAIT_SECONDS = 60  # the longest a question waits for its batch (a provider that hangs)


def embed_query_start(bot, query: str) -> list[float] | Future:
    """The query's embedding with the bot's active embedding model (a tuned one when the bot has
    it): the vector itself when this process remembers it, else a concurrent Future the batcher
    completes (providers.batching: concurrent questions are embedded together). Async callers
    await the Future without holding a thread (asyncio.wrap_future), so how many questions wait
    for one batch is not capped by a web worker's answer threads.

    Customers ask the same questions again and again, so each process remembers the last
    QUERY_EMBED_CACHE_SIZE of them (0 turns this off); the key includes the model, so a newly
    deployed tuned model never sees vectors of the old one. Raises providers.Overloaded when too
    many questions wait."""
    key = (serving.embedding_provider(bot).name, serving.embedding_model_arg(bot) or "", query)
    caching = settings.QUERY_EMBED_CACHE_SIZE > 0
    if caching and (vector := query_vectors.get(key)) is not None:
        return vector
    future = serving.submit_query(bot, query)
    if caching:

        def remember(done: Future) -> None:
            if not done.cancelled() and done.exception() is None:
                query_vectors.put(key, done.result())

        future.add_done_callback(remember)
    return future


def embed_query(bot, query: str) -> list[float]:
    """embed_query_start, waiting on this thread for the vector."""
    pending = embed_query_start(bot, query)
    if isinstance(pending, Future):
        return list(pending.result(EMBED_WAIT_SECONDS))
    return pending


def embed_queries(bot, queries: list[str]) -> list[list[float]]:
    """Batch form of embed_query, for callers answering many questions (benchmarks)."""
    return serving.embed_for_bot(bot, list(queries))


def _vector_literal(vector) -> str:
    # tolist() gives Python floats (the float32 values exactly); map(repr) is ~3x faster than
    # converting element by element.
    return "[" + ",".join(map(repr, np.asarray(vector, dtype=np.float32).tolist())) + "]"


# Sources are passed as an id list (a handful per bot): a join to knowledge_source made the
# planner probe the source table once per candidate chunk.
_READY = (
    "FROM knowledge_chunk c WHERE c.bot_id = %(bot)s AND c.embedding_model = %(model)s "
    "AND c.source_id = ANY(%(sources)s)"
)


def _ready_sources(bot_id: int, model: str) -> tuple[list[int], int, bool]:
    """(ids of the bot's sources that have chunks, their chunk total, whether the bot's own HNSW
    index for `model` is built and valid), in one round trip. An index being built
    CONCURRENTLY, or left invalid by a killed build, is not valid: the bot is scanned exactly."""
    with connection.cursor() as cur:
        cur.execute(
            "SELECT coalesce(array_agg(id), '{}'), coalesce(sum(chunk_count), 0), "
            "coalesce((SELECT indisvalid FROM pg_index WHERE indexrelid = to_regclass(%s)), false) "
            "FROM knowledge_source WHERE bot_id = %s AND chunk_count > 0",
            [vector_indexes.index_name(bot_id, model), bot_id],
        )
        sources, chunks, indexed = cur.fetchone()
    return list(sources), int(chunks), bool(indexed)


def _ef_search(n: int) -> int:
    """hnsw.ef_search for n rows from the bot's own index: one pass brings them (every row of the
    index is the bot's; a few may belong to a source being replaced, which the iterative scan
    steps past). Recall@10 against exact on retrieval_latency.py's clustered vectors, 10k-chunk
    bot: ef 50 0.918, 100 0.974, 160 0.990 (p95 10.9 / 10.4 / 12.5 ms); 100k: 1.0 at 100."""
    return max(HNSW_EF_SEARCH, math.ceil(n * 1.25))


def _set_index_scan(ef_search: int) -> str:
    return (
        "SELECT set_config('hnsw.iterative_scan', 'relaxed_order', true), "
        f"set_config('hnsw.ef_search', '{int(ef_search)}', true), "
        "set_config('enable_sort', 'off', true)"
    )


# The query vector, parsed once per statement (a 384-float literal takes ~0.1 ms to parse) and
# read as an InitPlan parameter, which the HNSW index scan accepts as its ORDER BY argument.
_QV = "qv AS MATERIALIZED (SELECT %(q)s::vector AS v)"


def _dims(qvec: str) -> int:
    """Dimensions of a vector literal ("[x,y,...]"): the cast the bot's index was built on."""
    return qvec.count(",") + 1


def _vector_sql(dims: int, *, approximate: bool) -> str:
    """The bot's n nearest chunks as (id, faq_id, cosine distance), for a statement that defines
    `qv` (_QV); named parameters."""
    if approximate:
        # The bot id and model name are literals (client-side binding), so the planner matches
        # the bot's partial index predicate, and the ORDER BY is the index's own cast expression.
        distance = f"c.embedding::vector({int(dims)}) <=> (SELECT v FROM qv)::vector({int(dims)})"
        return f"SELECT c.id, c.faq_id, {distance} AS d {_READY} ORDER BY {distance} LIMIT %(n)s"
    return (
        f"SELECT c.id, c.faq_id, c.embedding <=> (SELECT v FROM qv) AS d {_READY} "
        "ORDER BY d LIMIT %(n)s"
    )


# plainto_tsquery ANDs every word; a question rarely shares all its words with the right chunk,
# so the words are ORed and ts_rank_cd rewards chunks that match more (and closer) ones. A common
# word can match most of a big bot: ranking stops at TEXT_SCAN_LIMIT matches so the cost stays
# bounded (the vector side carries recall; this list adds exact-term matches).
_TEXT_CTES = (
    "tq AS (SELECT to_tsquery(%(ts)s::regconfig, "
    "replace(plainto_tsquery(%(ts)s::regconfig, %(query)s)::text, ' & ', ' | ')) AS q), "
    "matches AS MATERIALIZED (SELECT c.id, ts_rank_cd(c.search_vector, tq.q) AS r "
    f"{_READY.replace('FROM knowledge_chunk c', 'FROM knowledge_chunk c, tq')} "
    "AND c.search_vector @@ tq.q LIMIT %(scan)s), "
    "top AS (SELECT id, r FROM matches ORDER BY r DESC, id LIMIT %(n)s), "
    "txt AS MATERIALIZED (SELECT c.id, c.faq_id, c.embedding <=> (SELECT v FROM qv) AS d, "
    "row_number() OVER (ORDER BY top.r DESC, top.id) AS pos "
    "FROM top JOIN knowledge_chunk c ON c.id = top.id), "
)


def _params(
    bot_id: int,
    model: str,
    sources: list[int],
    qvec: str,
    n: int,
    query: str = "",
    ts: str = "english",
) -> dict:
    """The named parameters the statements above share (`ts`: the text-search configuration)."""
    return {
        "ts": ts,
        "bot": bot_id,
        "model": model,
        "sources": sources,
        "q": qvec,
        "n": n,
        "query": query,
        "scan": TEXT_SCAN_LIMIT,
    }


def _candidates(
    bot_id: int,
    model: str,
    sources: list[int],
    query: str,
    qvec: str,
    n: int,
    *,
    approximate: bool,
    chunks: int | None = None,
    ts: str = "english",
) -> tuple[list, list, dict[int, float]]:
    """Vector candidates, full-text candidates (best first) and the centroid similarity of every
    FAQ entry among them, in one statement: (chunk_id, faq_id, cosine distance) rows, and
    {faq_id: cosine between the query and the mean of the entry's phrasings}.

    Providers return unit vectors, so the mean of an entry's phrasings points at their centroid.
    Computed in SQL: parsing vectors into Python cost ~1 ms per candidate entry.
    `approximate`: the bot's own HNSW index is valid (_ready_sources); `chunks`: the bot's
    chunk count, when known (fewer than n rows from the index is then no reason to rescan).
    """
    sql = _candidates_sql(qvec, text=bool(query.strip()), approximate=approximate)
    params = _params(bot_id, model, sources, qvec, n, query, ts)
    with connection.cursor() as cur:
        if approximate:
            # The index holds only this bot's rows; the source filter is applied after the scan,
            # and iterative scanning steps past rows of a source being replaced. With sorting
            # off the planner never trades the index for a btree scan + sort. The settings are
            # local to this transaction.
            with transaction.atomic():
                cur.execute(_set_index_scan(_ef_search(n)))
                cur.execute(sql, params)
                rows = cur.fetchall()
            if sum(1 for r in rows if r[0] == 0) < min(n, chunks or n):
                # Too few rows although the bot has more: the scan gave up (a graph region cut
                # off by dead entries). An exact scan settles it.
                return _candidates(bot_id, model, sources, query, qvec, n, approximate=False, ts=ts)
        else:
            cur.execute(sql, params)
            rows = cur.fetchall()
    return _split_candidates(rows)


def _candidates_sql(qvec: str, *, text: bool, approximate: bool) -> str:
    """_candidates' statement: rows (kind, chunk_id, faq_id, value, text rank) where kind 0 is a
    vector candidate (value: cosine distance), 1 a full-text one (only when `text`) and 2 an FAQ
    entry's centroid similarity (chunk_id 0)."""
    return (
        f"WITH {_QV}, vec AS MATERIALIZED ({_vector_sql(_dims(qvec), approximate=approximate)}), "
        + (_TEXT_CTES if text else "")
        + "faqs AS (SELECT DISTINCT faq_id FROM ("
        + "SELECT faq_id FROM vec"
        + (" UNION ALL SELECT faq_id FROM txt" if text else "")
        + ") x WHERE faq_id IS NOT NULL), "
        "cent AS (SELECT k.faq_id, 1 - (avg(k.embedding) <=> (SELECT v FROM qv)) AS s "
        "FROM knowledge_chunk k WHERE k.faq_id IN (SELECT faq_id FROM faqs) "
        "AND k.embedding_model = %(model)s GROUP BY k.faq_id) "
        "SELECT 0, id, faq_id, d, 0 FROM vec "
        + ("UNION ALL SELECT 1, id, faq_id, d, pos FROM txt " if text else "")
        + "UNION ALL SELECT 2, 0, faq_id, s, 0 FROM cent"
    )


def _split_candidates(rows) -> tuple[list, list, dict[int, float]]:
    """_candidates_sql's rows as (vector rows by distance, text rows by rank, {faq_id: centroid
    similarity})."""
    vector_rows = sorted(  # relaxed_order may return the index's rows slightly unordered
        ((cid, faq_id, d) for kind, cid, faq_id, d, _ in rows if kind == 0), key=lambda r: r[2]
    )
    text_rows = [
        (cid, faq_id, d)
        for kind, cid, faq_id, d, _ in sorted((r for r in rows if r[0] == 1), key=lambda r: r[4])
    ]
    centroid = {faq_id: float(s) for kind, _, faq_id, s, _ in rows if kind == 2}
    return vector_rows, text_rows, centroid


def _vector_candidates(
    bot_id: int,
    model: str,
    sources: list[int],
    qvec: str,
    n: int,
    *,
    approximate: bool,
) -> list[tuple[int, int | None, float]]:
    """(chunk_id, faq_id, cosine distance) of the bot's n nearest chunks (the vector list alone)."""
    params = _params(bot_id, model, sources, qvec, n)
    if approximate:
        with transaction.atomic(), connection.cursor() as cur:
            cur.execute(_set_index_scan(_ef_search(n)))
            cur.execute(f"WITH {_QV} {_vector_sql(_dims(qvec), approximate=True)}", params)
            rows = cur.fetchall()
        if len(rows) == n:
            return sorted(rows, key=lambda r: r[2])
    with connection.cursor() as cur:
        cur.execute(f"WITH {_QV} {_vector_sql(_dims(qvec), approximate=False)}", params)
        return cur.fetchall()


def _text_candidates(
    bot_id: int, model: str, sources: list[int], query: str, qvec: str, n: int, ts: str = "english"
) -> list[tuple[int, int | None, float]]:
    """(chunk_id, faq_id, cosine distance) of chunks matching any of the query's words, best
    ts_rank_cd first (the full-text list alone)."""
    params = _params(bot_id, model, sources, qvec, n, query, ts)
    with connection.cursor() as cur:
        cur.execute(
            f"WITH {_QV}, {_TEXT_CTES[:-2]} SELECT id, faq_id, d FROM txt ORDER BY pos", params
        )
        return cur.fetchall()


HITS_SQL = (
    "SELECT c.id, c.title, c.text, s.name, s.url, f.id, f.question, f.answer, f.url, "
    "f.external_id FROM knowledge_chunk c JOIN knowledge_source s ON s.id = c.source_id "
    "LEFT JOIN knowledge_faqentry f ON f.id = c.faq_id WHERE c.id = ANY(%s)"
)


def search(*, bot, query: str, limit: int = 5, vector=None) -> list[Hit]:
    """The bot's `limit` best results for `query`, best first; FAQ entries appear once.

    `vector` is the query's embedding when the caller already has it (batched embedding).
    Three statements: the bot's sources, the candidates (vector, full text and FAQ centroids in
    one), the hits' fields; the HNSW path adds a settings statement and a commit.
    """
    model = serving.embedding_model_for_bot(bot)
    if vector is None:
        vector = embed_query(bot, query)
    qv = np.asarray(vector, dtype=np.float32)
    qv = qv / (np.linalg.norm(qv) or 1.0)
    qvec = _vector_literal(qv)
    n = max(MIN_CANDIDATES, limit * CANDIDATES_PER_RESULT)

    # Every source that has chunks answers, whatever its status: a source being re-ingested,
    # re-embedded or whose re-ingest failed keeps its last good chunks until a successful
    # replace (knowledge.ingest_steps swaps them atomically).
    sources, chunks, indexed = _ready_sources(bot.pk, model)
    if not sources:
        return []
    vector_rows, text_rows, centroid = _candidates(
        bot.pk,
        model,
        sources,
        query,
        qvec,
        n,
        approximate=indexed,
        chunks=chunks,
        ts=serving.text_search_config(bot),
    )
    similarity = {cid: 1.0 - float(d) for cid, _, d in [*vector_rows, *text_rows]}
    if not similarity:
        # A switch of embedding model (a tuning deploy, knowledge.reembedding) may have committed
        # between reading the bot and searching: its chunks now carry the new model's name.
        fresh = type(bot).objects.filter(pk=bot.pk).first()
        if fresh is not None and serving.embedding_model_for_bot(fresh) != model:
            return search(bot=fresh, query=query, limit=limit)
        return []
    ranked = _fuse(vector_rows, text_rows, centroid, similarity)
    return _hits(ranked, similarity, limit)


@dataclass
class _Ranked:
    best: dict  # result key -> its best-matching chunk id
    score: dict  # result key -> cosine (FAQ: to the entry's centroid)
    fused: dict  # result key -> weighted RRF value (ordering only)
    vector_rank: dict
    text_rank: dict


def _fuse(vector_rows, text_rows, centroid: dict, similarity: dict) -> _Ranked:
    """One result per FAQ entry or document chunk, scored and fused (weighted RRF)."""
    faq_of = {cid: faq_id for cid, faq_id, _ in [*vector_rows, *text_rows]}

    def key(cid: int) -> tuple[str, int]:
        return ("faq", faq_of[cid]) if faq_of[cid] else ("chunk", cid)

    # One result per key, represented by its best-matching chunk.
    best: dict[tuple[str, int], int] = {}
    for cid in sorted(similarity, key=lambda c: -similarity[c]):
        best.setdefault(key(cid), cid)
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
    return _Ranked(
        best=best,
        score=score,
        fused=fused,
        vector_rank={k: i for i, k in enumerate(vector_order, 1)},
        text_rank={k: i for i, k in enumerate(text_order, 1)},
    )


def _hits(ranked: _Ranked, similarity: dict, limit: int) -> list[Hit]:
    """The top `limit` results with their fields (one statement)."""
    top = sorted(ranked.best, key=lambda k: (-ranked.fused[k], -ranked.score[k]))[:limit]
    with connection.cursor() as cur:
        cur.execute(HITS_SQL, [[ranked.best[k] for k in top]])
        fields = {row[0]: row[1:] for row in cur.fetchall()}
    hits = []
    for k in top:
        cid = ranked.best[k]
        title, text, source_name, source_url, faq_id, question, answer, faq_url, external_id = (
            fields[cid]
        )
        hits.append(
            Hit(
                chunk_id=cid,
                faq_id=faq_id,
                title=title or (question if faq_id else "") or source_name,
                text=text,
                answer=answer if faq_id else text,
                url=(faq_url if faq_id else "") or source_url,
                score=ranked.score[k],
                phrasing_score=similarity[cid],
                text_rank=ranked.text_rank.get(k),
                vector_rank=ranked.vector_rank.get(k),
                fused=ranked.fused[k],
                source_name=source_name,
                faq_external_id=external_id if faq_id else "",
                question=question if faq_id else "",
            )
        )
    return hits


def language_notice(bot) -> dict | None:
    """When most of the bot's knowledge (by chunks) is written in another language than the
    bot's: {"detected": code, "detected_name", "suggest": the bot language to switch to,
    "suggest_name", "supported": whether it is one of the bot languages}; else None."""
    weights: dict[str, int] = {}
    for code, chunks in (
        Source.objects.filter(bot=bot, chunk_count__gt=0)
        .exclude(language="")
        .values_list("language", "chunk_count")
    ):
        weights[code] = weights.get(code, 0) + chunks
    if not weights:
        return None
    detected = max(weights, key=weights.get)
    suggest = language_detection.bot_language_for(detected)
    if suggest == bot.language:
        return None
    return {
        "detected": detected,
        "detected_name": language_detection.name(detected),
        "suggest": suggest,
        "suggest_name": languages.LANGUAGES[suggest].name,
        "supported": detected in languages.LANGUAGES,
        "bot_name": languages.get(bot.language).name,
    }
