"""Retrieval latency: `knowledge.selectors.search()` for bots of 1k, 10k and 100k chunks that share
one table with other bots' chunks, beside an exact-scan reference measured in the same run.

    python -m benchmarks.retrieval_latency [--sizes 1000,10000,100000] [--others 20000] [--queries 200]
        [--table-chunks 1000000]   # fill the table to this many rows with other bots' chunks

`make bench-search` ends with one JSON line: `table_chunks`, and `p95_ms` / `recall_at_10` per bot
size (`1k`, `10k`, `100k`). A 1M-row table takes about 4 minutes in all on two cores (COPY 1 min,
full-text vectors and VACUUM 1 min, the measured bots' own HNSW indexes 40 s).

Rows are synthetic (clustered unit vectors, 384 dims, and short texts from a Zipf vocabulary so the
full-text side has real work) and loaded with binary COPY into a throwaway database. The other
bots that fill the table have 2,000 chunks each (scanned exactly, no index of their own), or with
--index-others 50,000 each with their own indexes (slower to build; shows what many partial
indexes on one table cost the planner). The measured bots' indexes are built as the worker builds
them after an ingest (knowledge.vector_indexes.sync). Each query runs the whole `search()` (vector
+ full text + fusion + fetching the hits) with a precomputed query vector: embedding the question
(~10-30 ms with MiniLM on CPU) is not retrieval. Figures are printed, not asserted. search() is
timed in a loop of its own, before the reference scans (an exact scan of 100k rows between two
searches evicts the HNSW index from a small shared_buffers).

Last run, 1M rows (2 cores), p50/p95 ms: 1k exact 7.2/8.9, 10k own HNSW 10.8/13.4 (recall@10
0.975), 100k own HNSW 12.4/14.5 (recall@10 1.0); exact reference 1.2/1.4, 11.9/12.9, 109/122.
With --index-others (18 other bots of 50k chunks, each with its own index: 20 HNSW indexes on the
table, 7.5 min of builds): 8.2/9.2, 10.7/15.1 (0.972), 12.8/21.9 (0.999). Before (one shared
index filtered after the scan, 131k-200k rows): 1k 8-29, 10k 30-69, 100k 20-26 at p95.
"""

from __future__ import annotations

import argparse
import json
import sys
import time

import numpy as np

from benchmarks.throwaway_db import percentile, throwaway_database

DIMS = 384
MODEL = "local:all-MiniLM-L6-v2"
CLUSTERS = 2000
NOISE = 0.6  # relative to a unit centre: neighbours exist but are not trivial to find
VOCABULARY = 3000
COPY_SQL = (
    "COPY knowledge_chunk (bot_id, source_id, position, title, text, embedding, embedding_model, created_at)"
    " FROM STDIN WITH (FORMAT BINARY)"
)
COPY_TYPES = ["int8", "int8", "int4", "varchar", "text", "vector", "varchar", "timestamptz"]


def parse_args(argv):
    parser = argparse.ArgumentParser(prog="python -m benchmarks.retrieval_latency")
    parser.add_argument("--sizes", default="1000,10000,100000", help="chunks of each measured bot")
    parser.add_argument(
        "--others", type=int, default=20000, help="chunks of other bots in the table"
    )
    parser.add_argument(
        "--table-chunks",
        type=int,
        default=0,
        help="total rows in the table: other bots' chunks fill it up (overrides --others)",
    )
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument(
        "--index-others",
        action="store_true",
        help="fill with bots of 50k chunks, each with its own index (slow to build), instead of "
        "bots small enough to be scanned exactly",
    )
    parser.add_argument("--seed", type=int, default=0)
    return parser.parse_args(argv)


class Synth:
    def __init__(self, seed: int):
        self.rng = np.random.default_rng(seed)
        centres = self.rng.standard_normal((CLUSTERS, DIMS)).astype(np.float32)
        self.centres = centres / np.linalg.norm(centres, axis=1, keepdims=True)
        self.words = [f"w{i}" for i in range(VOCABULARY)]
        weights = 1.0 / np.arange(1, VOCABULARY + 1)
        self.word_p = weights / weights.sum()

    def vectors(self, n: int) -> np.ndarray:
        picks = self.rng.integers(0, CLUSTERS, n)
        noise = self.rng.standard_normal((n, DIMS)).astype(np.float32) * (NOISE / np.sqrt(DIMS))
        v = self.centres[picks] + noise
        return v / np.linalg.norm(v, axis=1, keepdims=True)

    def texts(self, n: int, length: int = 12) -> list[str]:
        idx = self.rng.choice(VOCABULARY, size=(n, length), p=self.word_p)
        return [" ".join(self.words[i] for i in row) for row in idx]


def make_bot(workspace, name: str):
    from bots.services import bot_create
    from knowledge.models import Source

    bot = bot_create(workspace=workspace, name=name, slug=f"lat-{name.lower().replace(' ', '-')}")
    source = Source.objects.create(
        bot=bot, kind=Source.Kind.TEXT, name=f"{name} corpus", status=Source.Status.READY
    )
    return bot, source


def copy_rows(bot, source, n: int, synth: Synth) -> None:
    from django.db import connection
    from django.utils import timezone
    from pgvector.psycopg.vector import register_vector_info
    from psycopg.types import TypeInfo

    now = timezone.now()
    with connection.cursor() as cursor:
        raw = cursor.cursor
        register_vector_info(raw, TypeInfo.fetch(raw.connection, "vector"))
        for start in range(0, n, 20000):
            count = min(20000, n - start)
            vectors, texts = synth.vectors(count), synth.texts(count)
            with raw.copy(COPY_SQL) as copy:
                copy.set_types(COPY_TYPES)
                for i in range(count):
                    copy.write_row(
                        (
                            bot.pk,
                            source.pk,
                            start + i,
                            texts[i][:40],
                            texts[i],
                            vectors[i],
                            MODEL,
                            now,
                        )
                    )
    source.chunk_count = n  # search() picks exact or HNSW from the ready sources' chunk counts
    source.save(update_fields=["chunk_count"])


def other_bots(others: int, largest: int) -> list[int]:
    """Chunk counts of the other bots sharing the table: bots of `largest` chunks (the size up
    to which a bot is scanned exactly and has no index of its own) and one with the rest."""
    full, rest = divmod(others, largest)
    return [largest] * full + ([rest] if rest else [])


OTHER_BOT_MAX = 50000  # --index-others: the other bots' size


def load(sizes: list[int], others: int, synth: Synth, *, index_others: bool = False):
    from django.db import connection

    from accounts.services import account_signup
    from knowledge import vector_indexes

    user = account_signup(
        email="latency@askhandle.local", password="bench-password-123", workspace_name="Latency"
    )
    workspace = user.workspaces.get()
    started = time.perf_counter()
    measured = []
    for size in sizes:
        bot, source = make_bot(workspace, f"Bot {size}")
        copy_rows(bot, source, size, synth)
        measured.append((size, bot))
    largest = OTHER_BOT_MAX if index_others else vector_indexes.exact_max_chunks()
    fill = other_bots(others, largest)
    other = []
    for i, n in enumerate(fill):
        bot, source = make_bot(workspace, f"Other {i}")
        copy_rows(bot, source, n, synth)
        other.append(bot)
    total = sum(sizes) + sum(fill)
    load_s = time.perf_counter() - started
    started = time.perf_counter()
    with connection.cursor() as cur:
        cur.execute(
            "UPDATE knowledge_chunk SET search_vector = setweight(to_tsvector('english', title), 'A')"
            " || setweight(to_tsvector('english', text), 'B')"
        )
        cur.execute("VACUUM ANALYZE knowledge_chunk")
    tsv_s = time.perf_counter() - started
    builds = []
    for _, bot in measured + [(0, b) for b in other]:
        # What the worker does after an ingest (knowledge.tasks.sync_vector_indexes).
        started = time.perf_counter()
        if vector_indexes.sync(bot.pk)["created"]:
            builds.append(f"{bot.name} {time.perf_counter() - started:.1f} s")
    print(
        f"Loaded {total} chunks ({', '.join(map(str, sizes))} for the measured bots, {sum(fill)} "
        f"for {len(fill)} others of up to {largest}) by binary COPY in {load_s:.1f} s; "
        f"search_vector and VACUUM {tsv_s:.1f} s; per-bot HNSW builds: {', '.join(builds) or 'none'}",
        flush=True,
    )
    return measured, total


def exact_ids(bot, qvec: str, n: int) -> list[int]:
    from django.db import connection

    with connection.cursor() as cur:
        cur.execute(
            "SELECT id FROM knowledge_chunk WHERE bot_id = %s AND embedding_model = %s "
            "ORDER BY embedding <=> %s::vector LIMIT %s",
            [bot.pk, MODEL, qvec, n],
        )
        return [row[0] for row in cur.fetchall()]


def vector_path(bot) -> bool:
    """Whether search() takes the HNSW path for this bot (its own index is built and valid)."""
    from knowledge import selectors

    return selectors._ready_sources(bot.pk, MODEL)[2]


def plan_of(bot, query, text: str) -> str:
    """Which vector path search() took, read from the SQL it ran (and the plan of that SQL)."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from knowledge import selectors

    # DEBUG keeps the last 9000 queries; once that log is full a capture sees nothing.
    connection.queries_log.clear()
    with CaptureQueriesContext(connection) as queries:
        selectors.search(bot=bot, query=text, limit=5, vector=query)
    sql = [q["sql"] for q in queries]
    vector_sql = next((q for q in sql if f"::vector({DIMS}) <=>" in q), None)
    if vector_sql is None:
        return "exact"
    with connection.cursor() as cur:
        cur.execute("SET enable_sort = off")
        cur.execute("EXPLAIN " + vector_sql)
        plan = "\n".join(row[0] for row in cur.fetchall())
        cur.execute("RESET enable_sort")
    from knowledge import vector_indexes

    own = vector_indexes.index_name(bot.pk, MODEL)
    return "own HNSW" if own in plan else "btree + sort"


def timed(fn, *args, **kwargs) -> tuple[float, object]:
    started = time.perf_counter()
    result = fn(*args, **kwargs)
    return (time.perf_counter() - started) * 1000, result


def measure(bot, queries: np.ndarray, query_texts: list[str]) -> dict:
    """search() timed alone first, then its vector and text parts alone, then the exact
    reference: with 128 MB of shared buffers, an exact scan of 100k rows between two searches
    evicts the HNSW index and the timings measured the cache, not the search."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from knowledge import selectors

    n = max(selectors.MIN_CANDIDATES, 5 * selectors.CANDIDATES_PER_RESULT)
    sources = list(bot.sources.values_list("pk", flat=True))
    approximate = vector_path(bot)
    qvecs = [selectors._vector_literal(q) for q in queries]
    pairs = list(zip(queries, query_texts, strict=True))
    search_ms = [
        timed(selectors.search, bot=bot, query=text, limit=5, vector=q)[0] for q, text in pairs
    ]
    vector_ms, got, fallbacks = [], [], 0  # fallbacks: index scans redone exactly
    for qvec in qvecs:
        with CaptureQueriesContext(connection) as captured:
            ms, rows = timed(
                selectors._vector_candidates,
                bot.pk,
                MODEL,
                sources,
                qvec,
                n,
                approximate=approximate,
            )
        vector_ms.append(ms)
        fallbacks += approximate and any("ORDER BY d LIMIT" in q["sql"] for q in captured)
        got.append([row[0] for row in rows])
    text_ms = [
        timed(selectors._text_candidates, bot.pk, MODEL, sources, text, qvec, n)[0]
        for qvec, text in zip(qvecs, query_texts, strict=True)
    ]
    exact_ms, recalls = [], []
    for qvec, ids in zip(qvecs, got, strict=True):
        ms, truth = timed(exact_ids, bot, qvec, n)
        exact_ms.append(ms)
        recalls.append(len(set(ids[:10]) & set(truth[:10])) / max(1, len(truth[:10])))
    return {
        "search_p50": percentile(search_ms, 50),
        "search_p95": percentile(search_ms, 95),
        "exact_p50": percentile(exact_ms, 50),
        "exact_p95": percentile(exact_ms, 95),
        "vector_p95": percentile(vector_ms, 95),
        "text_p95": percentile(text_ms, 95),
        "recall": float(np.mean(recalls)),
        "fallbacks": fallbacks,
        "plan": plan_of(bot, queries[0], query_texts[0]),
    }


def main(argv=None) -> list[dict]:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    sizes = [int(s) for s in args.sizes.split(",")]
    synth = Synth(args.seed)
    results = []
    others = max(0, args.table_chunks - sum(sizes)) if args.table_chunks else args.others
    with throwaway_database("askhandle_latency"):
        measured, table_chunks = load(sizes, others, synth, index_others=args.index_others)
        queries = synth.vectors(args.queries)
        texts = [" ".join(t.split()[:6]) for t in synth.texts(args.queries)]
        for size, bot in measured:
            measure(bot, queries[:10], texts[:10])  # warm caches and the connection
            results.append({"chunks": size, **measure(bot, queries, texts)})
    print(
        f"\nsearch(limit=5) per bot, {args.queries} queries each. exact: the bot's exact top-40 scan;"
        " recall@10: the vector path against it; fallbacks: index scans redone exactly"
    )
    columns = [
        ("bot chunks", "chunks", "{}"),
        ("vector path", "plan", "{}"),
        ("search p50 ms", "search_p50", "{:.1f}"),
        ("search p95 ms", "search_p95", "{:.1f}"),
        ("vector p95", "vector_p95", "{:.1f}"),
        ("text p95", "text_p95", "{:.1f}"),
        ("exact p50 ms", "exact_p50", "{:.1f}"),
        ("exact p95 ms", "exact_p95", "{:.1f}"),
        ("recall@10", "recall", "{:.3f}"),
        ("fallbacks", "fallbacks", "{}"),
    ]
    header = tuple(title for title, _, _ in columns)
    rows = [tuple(fmt.format(r[key]) for _, key, fmt in columns) for r in results]
    widths = [max(len(x) for x in col) for col in zip(header, *rows, strict=True)]
    for row in [header, tuple("-" * w for w in widths), *rows]:
        print("  ".join(x.ljust(w) for x, w in zip(row, widths, strict=True)), flush=True)
    summary = {"table_chunks": table_chunks}
    for r in results:
        label = f"{r['chunks'] // 1000}k" if r["chunks"] % 1000 == 0 else str(r["chunks"])
        summary[label] = {
            "p95_ms": round(r["search_p95"], 1),
            "recall_at_10": round(r["recall"], 3),
            "path": r["plan"],
            "exact_p95_ms": round(r["exact_p95"], 1),
        }
    print(json.dumps(summary), flush=True)
    return results


if __name__ == "__main__":
    main()
