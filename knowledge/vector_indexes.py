"""Per-bot HNSW indexes: search latency that does not grow with the shared chunk table.

Every bot's chunks live in one table. A bot of up to exact_max_chunks() chunks is
scanned exactly (its rows through the (bot, source) btree, then a sort: a few ms, always right).
A bigger bot gets an HNSW index of its own, partial on `bot_id = <id> AND embedding_model =
'<model>'` over the cast to its vectors' dimensions. Its search walks a graph of its own rows
only, so the cost depends neither on the table's size nor on the other bots. A shared index
filtered after the scan steps over the other bots' rows: a 10k-chunk bot took 25-40 ms in a
130k-row table and grew with the table; an exact scan of 10k rows takes 20-70 ms
(benchmarks/retrieval_latency.py). pgvector's documentation suggests partial indexes for
filtering on a few values; for many thousands of large bots, list partitioning by bot is the
next step (each partial index adds a predicate check to planning the table's queries).

sync(bot_id) brings a bot's indexes in line with its chunks, idempotently:
- creates the missing index of the bot's current model once it has more than exact_max_chunks()
  chunks of it, CONCURRENTLY (ingestion and search go on; until the build is valid, search scans
  exactly);
- drops indexes of models the bot no longer uses (a tuning deploy, an embedding switch), of a bot
  that shrank below half the threshold (no rebuild when a bot hovers at the line), of a deleted
  bot, and invalid ones a killed build left behind.
A per-bot advisory lock keeps two runs from building the same index. It runs after every commit
that changes a bot's chunks (`sync_on_commit`: ingestion, source deletion, vectors swapped, bot
deleted) and in beat's hourly sweep, which also catches a sync lost while the broker was down.
Both tasks are defined here (knowledge.tasks imports them for the worker).
"""

from __future__ import annotations

import hashlib
import logging
import re

from celery import shared_task
from django.conf import settings
from django.db import connection, transaction

from askhandle.jobs import PUBLISH_ERRORS

log = logging.getLogger(__name__)

PREFIX = "knowledge_chunk_hnsw_b"
_NAME = re.compile(rf"^{PREFIX}(\d+)_([0-9a-f]{{8}})$")
_LOCK_NAMESPACE = 0x4B4E  # advisory lock (namespace, bot id): "KN"
# HNSW build settings: memory for the graph (a 100k-chunk bot of 384 dims needs ~200 MB to build
# in memory; beyond it the build spills and slows down), workers beside the leader.
BUILD_WORK_MEM = "512MB"
BUILD_WORKERS = 1


def exact_max_chunks() -> int:
    """Up to this many chunks an exact scan of a bot's rows takes a few ms and is always right
    (benchmarks/retrieval_latency.py: 1k chunks ~10 ms at p95 on a loaded 2-core machine, growing
    ~2-3 ms per 1k); above it the bot gets an index of its own. settings (env
    ASKHANDLE_EXACT_SEARCH_MAX_CHUNKS)."""
    return settings.KNOWLEDGE_EXACT_SEARCH_MAX_CHUNKS


def index_name(bot_id: int, model: str) -> str:
    """The bot's index for `model` (63 characters at most, as Postgres names are)."""
    return f"{PREFIX}{int(bot_id)}_{hashlib.sha1(model.encode()).hexdigest()[:8]}"


def existing(bot_id: int | None = None) -> dict[str, tuple[int, bool]]:
    """{index name: (bot id, valid)} of the per-bot indexes (of one bot, or all)."""
    with connection.cursor() as cur:
        cur.execute(
            "SELECT c.relname, i.indisvalid FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid "
            "WHERE i.indrelid = 'knowledge_chunk'::regclass AND starts_with(c.relname, %s)",
            [PREFIX],
        )
        rows = cur.fetchall()
    found = {}
    for name, valid in rows:
        match = _NAME.match(name)
        if match and (bot_id is None or int(match.group(1)) == bot_id):
            found[name] = (int(match.group(1)), valid)
    return found


def _wanted(bot_id: int) -> tuple[str | None, int, int]:
    """(the model whose index the bot should have, or None; its chunks; its vectors' dims)."""
    with connection.cursor() as cur:
        cur.execute(
            "SELECT c.embedding_model, count(*), max(vector_dims(c.embedding)) "
            "FROM knowledge_chunk c WHERE c.bot_id = %s GROUP BY c.embedding_model "
            "ORDER BY count(*) DESC LIMIT 1",
            [bot_id],
        )
        row = cur.fetchone()
    if row is None:
        return None, 0, 0
    model, chunks, dims = row
    return (model if chunks > exact_max_chunks() // 2 else None), int(chunks), int(dims or 0)


def sync(bot_id: int) -> dict:
    """Create or drop the bot's indexes to match its chunks now. Returns what it did."""
    concurrently = "" if connection.in_atomic_block else " CONCURRENTLY"
    done = {"created": [], "dropped": []}
    with connection.cursor() as cur:
        cur.execute("SELECT pg_advisory_lock(%s, %s)", [_LOCK_NAMESPACE, bot_id])
        try:
            model, chunks, dims = _wanted(bot_id)
            keep = index_name(bot_id, model) if model else None
            kept = False
            for name, (_, valid) in existing(bot_id).items():
                if name == keep and valid:
                    kept = True
                else:
                    cur.execute(f'DROP INDEX{concurrently} IF EXISTS "{name}"')
                    done["dropped"].append(name)
            if model and not kept and chunks > exact_max_chunks() and dims:
                _build(cur, keep, bot_id, model, dims, concurrently)
                done["created"].append(keep)
        finally:
            cur.execute("SELECT pg_advisory_unlock(%s, %s)", [_LOCK_NAMESPACE, bot_id])
    if done["created"] or done["dropped"]:
        log.info("Bot %s vector indexes: %s", bot_id, done)
    return done


@shared_task(name="knowledge.tasks.sync_vector_indexes", acks_late=True)
def sync_vector_indexes(bot_id: int) -> dict:
    return sync(bot_id)


def _build(cur, name: str, bot_id: int, model: str, dims: int, concurrently: str) -> None:
    # The model name and bot id are literals in the predicate (a search's client-side-bound
    # query carries them as literals too, which is how the planner matches a partial index).
    quoted_model = model.replace("'", "''")
    if not concurrently:
        # Inside a transaction (a test's, or a caller's atomic block): Postgres refuses to index
        # a table with deferred foreign-key checks pending; run them now.
        cur.execute("SET CONSTRAINTS ALL IMMEDIATE")
        cur.execute("SET CONSTRAINTS ALL DEFERRED")
    cur.execute(f"SET maintenance_work_mem = '{BUILD_WORK_MEM}'")
    cur.execute(f"SET max_parallel_maintenance_workers = {BUILD_WORKERS}")
    try:
        cur.execute(
            f'CREATE INDEX{concurrently} IF NOT EXISTS "{name}" ON knowledge_chunk '
            f"USING hnsw ((embedding::vector({int(dims)})) vector_cosine_ops) "
            f"WHERE bot_id = {int(bot_id)} AND embedding_model = '{quoted_model}'"
        )
    finally:
        cur.execute("RESET maintenance_work_mem")
        cur.execute("RESET max_parallel_maintenance_workers")


def sync_all() -> dict:
    """Beat's sweep: every bot that has an index or enough chunks for one."""
    with connection.cursor() as cur:
        cur.execute(
            "SELECT bot_id FROM knowledge_chunk GROUP BY bot_id HAVING count(*) > %s",
            [exact_max_chunks() // 2],
        )
        bots = {row[0] for row in cur.fetchall()}
    bots |= {bot for bot, _ in existing().values()}
    results = {bot: sync(bot) for bot in sorted(bots)}
    return {bot: r for bot, r in results.items() if r["created"] or r["dropped"]}


@shared_task(name="knowledge.tasks.sync_all_vector_indexes")
def sync_all_vector_indexes() -> dict:
    return sync_all()


def sync_on_commit(bot_id: int) -> None:
    """Queue sync(bot_id) once the current transaction commits. A broker that is down costs only
    speed (search scans exactly meanwhile); beat's sweep catches up."""

    def send() -> None:
        try:
            sync_vector_indexes.delay(bot_id)
        except PUBLISH_ERRORS as exc:
            log.warning("Could not queue the vector index sync of bot %s: %s", bot_id, exc)

    transaction.on_commit(send)
