"""Ingestion throughput: FAQ entries per second through the real `source_ingest` (parse, embed in
batches, COPY, full-text UPDATE, one transaction), beside the raw embedding throughput of the same
model on the same texts in the same run. The difference is the pipeline's overhead.

    python -m benchmarks.ingest_throughput [--entries 1000] [--alternates 1] [--repeats 2]

Runs on a throwaway database (created, migrated, dropped) with uploads in a temporary folder.
Raw and pipeline runs alternate and the best of each is compared. Wall time moves with whatever
else runs on the machine, so CPU seconds are printed too: this process plus its PostgreSQL backend
(read from /proc when the database is local), which other processes barely disturb. The last line
is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import logging
import random
import sys
import tempfile
import time

from benchmarks.throwaway_db import throwaway_database

TOPICS = [
    "delivery",
    "returns",
    "a refund",
    "my order",
    "repairs",
    "a bike service",
    "rentals",
    "the warranty",
    "payment",
    "gift cards",
    "opening hours",
    "e-bike batteries",
    "frame sizes",
    "trade-ins",
    "leasing",
    "test rides",
    "helmets",
    "cargo bikes",
    "kids' bikes",
    "spare parts",
]
FORMS = [
    "How does {t} work for {c} customers?",
    "What is your policy on {t} in {c}?",
    "Can I ask about {t} for {c}?",
    "Do you offer {t} to {c} riders?",
    "How long does {t} take in {c}?",
    "What does {t} cost for {c}?",
]
PLACES = [
    "Amsterdam",
    "Utrecht",
    "Rotterdam",
    "Haarlem",
    "Leiden",
    "Delft",
    "Gouda",
    "Zwolle",
    "Breda",
    "Arnhem",
    "Nijmegen",
    "Groningen",
    "Maastricht",
    "Eindhoven",
    "Tilburg",
    "Almere",
    "Amersfoort",
    "Hilversum",
]


def make_entries(n: int, alternates: int, seed: int = 7) -> list[dict]:
    rng = random.Random(seed)
    entries, seen = [], set()
    while len(entries) < n:
        topic, place = rng.choice(TOPICS), rng.choice(PLACES)
        form = rng.choice(FORMS)
        question = form.format(t=topic, c=place) + f" (case {len(entries) + 1})"
        if question in seen:
            continue
        seen.add(question)
        others = [
            rng.choice(FORMS).format(t=topic, c=place) + f" #{len(entries) + 1}.{k}"
            for k in range(alternates)
        ]
        answer = (
            f"For {topic} in {place} we answer within one working day. Bring your receipt to 14 Canal "
            f"Street or email hello@brightsidebikes.example; reference {rng.randint(1000, 9999)}."
        )
        entries.append(
            {
                "faq_id": f"faq-{len(entries) + 1}",
                "question": question,
                "answer": answer,
                "category": topic,
                "alternate_questions": others,
            }
        )
    return entries


def backend_cpu_seconds() -> float | None:
    """CPU time of this connection's PostgreSQL backend process, when the server runs on this
    machine (the embedded one does); None otherwise."""
    import os

    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        pid = cursor.fetchone()[0]
    try:
        with open(f"/proc/{pid}/stat") as handle:
            fields = handle.read().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime


def cpu_now() -> tuple[float, float | None]:
    return time.process_time(), backend_cpu_seconds()


def cpu_since(before: tuple[float, float | None]) -> float:
    """Client CPU (all threads) plus database backend CPU: unlike wall time, barely moved by
    other processes competing for the cores."""
    client, backend = cpu_now()
    return (
        client
        - before[0]
        + ((backend - before[1]) if backend is not None and before[1] is not None else 0.0)
    )


def parse_args(argv):
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.ingest_throughput", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--entries", type=int, default=1000)
    parser.add_argument("--alternates", type=int, default=1, help="alternate questions per entry")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument(
        "--language",
        default="en",
        help="the bot's language: nl/de/fr/es use the multilingual model",
    )
    return parser.parse_args(argv)


def run(args) -> dict:
    from django.conf import settings

    import providers
    from accounts.models import Workspace
    from bots.services import bot_create
    from knowledge import services, serving
    from knowledge.models import Chunk, Source

    settings.MEDIA_ROOT = tempfile.mkdtemp(prefix="askhandle-bench-media-")
    workspace = Workspace.objects.create(name="Benchmark")
    bot = bot_create(
        workspace=workspace, name="Ingest benchmark", slug="ingest-bench", language=args.language
    )
    provider = providers.for_bot(bot)
    model, model_arg = serving.embedding_model_for_bot(bot), serving.embedding_model_arg(bot)
    entries = make_entries(args.entries, args.alternates)
    # Exactly the texts the pipeline embeds: each phrasing alone, or with its entry's question and
    # answer for a passage model (knowledge.serving.chunk_embed_text).
    texts = [
        serving.chunk_embed_text(
            {"faq_id": 1, "title": p, "text": f"Q: {e['question']}\nA: {e['answer']}"}, model
        )
        for e in entries
        for p in [e["question"], *e["alternate_questions"]]
    ]
    provider.embed(texts[:64], model=model_arg, kind="passage")  # load the model first

    raw_times, pipe_times, raw_cpu, pipe_cpu = [], [], [], []
    source = None
    for _ in range(args.repeats):
        started, cpu = time.perf_counter(), cpu_now()
        vectors = provider.embed(texts, model=model_arg, kind="passage")
        raw_times.append(time.perf_counter() - started)
        raw_cpu.append(cpu_since(cpu))
        assert len(vectors) == len(texts)

        # A new source each time: a re-ingest of the same one would reuse its vectors.
        if source is not None:
            services.source_delete(source=source)
        source = services.faq_entries_import(bot=bot, name="bench", entries=entries, enqueue=False)
        started, cpu = time.perf_counter(), cpu_now()
        result = services.source_ingest(source_id=source.pk)
        pipe_times.append(time.perf_counter() - started)
        pipe_cpu.append(cpu_since(cpu))
        if result.status != Source.Status.READY:
            raise RuntimeError(f"ingestion failed: {result.error}")
        assert Chunk.objects.filter(source=source).count() == len(texts)

    # Re-ingesting the unchanged source: every vector is reused; parsing and saving remain.
    services.source_reingest(source=source)
    started = time.perf_counter()
    services.source_ingest(source_id=source.pk)
    reingest = time.perf_counter() - started

    raw, pipe = min(raw_times), min(pipe_times)
    out = {
        "entries": len(entries),
        "chunks": len(texts),
        "model": serving.embedding_model_for_bot(bot),
        "raw_embed_s": round(raw, 3),
        "pipeline_s": round(pipe, 3),
        "raw_texts_per_s": round(len(texts) / raw, 1),
        "pipeline_chunks_per_s": round(len(texts) / pipe, 1),
        "pipeline_entries_per_s": round(len(entries) / pipe, 1),
        "overhead_pct": round(100 * (pipe - raw) / raw, 1),
        "raw_cpu_s": round(min(raw_cpu), 3),
        "pipeline_cpu_s": round(min(pipe_cpu), 3),
        "overhead_cpu_pct": round(100 * (min(pipe_cpu) - min(raw_cpu)) / min(raw_cpu), 1),
        "raw_runs_s": [round(t, 3) for t in raw_times],
        "pipeline_runs_s": [round(t, 3) for t in pipe_times],
        "unchanged_reingest_s": round(reingest, 3),
    }
    print(
        f"{len(entries)} FAQ entries ({len(texts)} phrasings, {out['model']}), best of {args.repeats}:"
    )
    print(f"  raw embedding      {raw:7.2f} s  {out['raw_texts_per_s']:8.1f} texts/s")
    print(
        f"  source_ingest      {pipe:7.2f} s  {out['pipeline_chunks_per_s']:8.1f} chunks/s  "
        f"{out['pipeline_entries_per_s']:8.1f} FAQ entries/s"
    )
    print(f"  pipeline overhead  {out['overhead_pct']:6.1f} % wall clock (goal: under 15 %)")
    print(
        f"  CPU seconds        raw {out['raw_cpu_s']:.2f}, pipeline {out['pipeline_cpu_s']:.2f} "
        f"(incl. the database backend): overhead {out['overhead_cpu_pct']:.1f} %"
    )
    print(f"  unchanged re-ingest {reingest:6.2f} s  (its vectors reused, nothing embedded)")
    return out


def main(argv=None) -> dict:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    logging.getLogger("sentence_transformers").setLevel(logging.WARNING)
    with throwaway_database("askhandle_bench_ingest"):
        result = run(args)
    print(json.dumps(result), flush=True)
    return result


if __name__ == "__main__":
    main()
