"""A bounded soak: chat traffic while an ingestion and a tuning run are in progress (issue 14).

    python -m benchmarks.soak [--clients 4] [--idle-seconds 15] [--max-seconds 150] [--rows 1500]

uvicorn (askhandle.asgi, 1 worker) on 127.0.0.1 against a throwaway database with a chat bot
whose FAQ answers directly (benchmarks.chat_load's). First the chat p95 with nothing else
running (idle); then, in two other processes on the same machine, a real ingestion of a
`--rows` FAQ file into a second bot (knowledge.services.source_ingest) and a real retrieval
tuning of a third bot (training.retrieval.tuning_run), while the same chat clients keep asking,
in rounds of 10 s, until both end or `--max-seconds`. Printed: each round's p95, errors and the
web worker's resident memory, then the loaded p95 beside the idle p95, memory growth from the
first to the last round, and how the ingestion and tuning ended. Nothing is asserted; the
process exits 1 when any request failed. Ends with one JSON line.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.chat_load import (
    ROOT,
    ThrowawayDatabase,
    _percentile,
    _seed,
    _setup_django,
    _start_server,
    _targets,
    _wait_for_models,
    measure_clients,
)

ROUND_SECONDS = 10.0
PHRASED_FAQ = [
    {
        "question": f"How do I {verb} my {thing}?",
        "answer": f"To {verb} your {thing}, open Settings and choose {verb.title()}.",
        "alternate_questions": [f"{verb} {thing} how", f"Can I {verb} the {thing}?"],
    }
    for verb in ("cancel", "change", "pause", "renew", "transfer")
    for thing in ("order", "subscription", "account", "address")
]


def _background_bots(rows: int) -> tuple[int, int]:
    """A bot with a `rows`-entry FAQ waiting to be ingested, and a bot with a phrased FAQ and a
    queued retrieval tuning. Returns (source id, tuning id); nothing is sent to a broker."""
    from accounts.models import Workspace
    from bots.services import bot_create
    from knowledge.services import faq_entries_import, source_ingest
    from training.models import RetrievalTuning

    workspace = Workspace.objects.get()
    bulk = bot_create(workspace=workspace, name="Bulk", slug="bulk")
    entries = [
        {"question": f"Question {i} about part {i * 7}?", "answer": f"Answer {i}."}
        for i in range(rows)
    ]
    source = faq_entries_import(bot=bulk, name="bulk", entries=entries, enqueue=False)
    tuned = bot_create(workspace=workspace, name="Tuned", slug="tuned")
    faq = faq_entries_import(bot=tuned, name="faq", entries=PHRASED_FAQ, enqueue=False)
    source_ingest(source_id=faq.pk)
    tuning = RetrievalTuning.objects.create(bot=tuned, reason="soak")
    return source.pk, tuning.pk


def _start_job(database_url: str, code: str, log_path: Path) -> subprocess.Popen:
    env = {
        **os.environ,
        "DATABASE_URL": database_url,
        "ASKHANDLE_REDIS_PREFIX": f"soak{os.getpid()}",
        "ASKHANDLE_RETRIEVAL_TUNING_AUTO": "0",
        "DJANGO_SETTINGS_MODULE": "askhandle.settings",
    }
    script = f"import django; django.setup(); {code}"
    return subprocess.Popen(
        [sys.executable, "-c", script],
        cwd=ROOT,
        env=env,
        stdout=log_path.open("w"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


def _rss_mb(pid: int) -> float:
    """Resident memory of a process and its children (uvicorn's worker), in MB."""
    total = 0
    for p in [pid, *_children(pid)]:
        try:
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        except OSError:
            pass
    return total / 1024


def _children(pid: int) -> list[int]:
    try:
        out = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except OSError:
        return []
    kids = [int(x) for x in out]
    return kids + [g for k in kids for g in _children(k)]


async def _chat_round(make, clients: int, seconds: float) -> dict:
    return await measure_clients(make, clients, 10**9, seconds)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--idle-seconds", type=float, default=15.0)
    parser.add_argument("--max-seconds", type=float, default=150.0)
    parser.add_argument("--rows", type=int, default=1500, help="FAQ rows of the ingested file")
    args = parser.parse_args(argv)

    _setup_django()
    logging.getLogger("httpx").setLevel(logging.WARNING)
    sys.path.insert(0, str(ROOT))
    from askhandle.devtools import stop_process
    from knowledge.models import Source
    from training.models import RetrievalTuning

    with ThrowawayDatabase() as db, tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        slug, key = _seed()
        source_id, tuning_id = _background_bots(args.rows)
        proc, base = _start_server(db.url(), 1, tmp / "uvicorn.log")
        _wait_for_models(tmp / "uvicorn.log", 1)
        jobs: list[subprocess.Popen] = []
        rounds: list[dict] = []

        async def soak() -> dict:
            shared, targets = _targets(base, slug, key, sse=False)
            make = dict(targets)["chat JSON"]
            try:
                await measure_clients(make, 2, 10, 30)  # warm-up
                idle = await _chat_round(make, args.clients, args.idle_seconds)
                idle["rss"] = _rss_mb(proc.pid)
                print(
                    f"idle:   {idle['n']} answers, p95 {idle['p95']:.0f} ms, "
                    f"{len(idle['errors'])} errors, web RSS {idle['rss']:.0f} MB",
                    flush=True,
                )
                jobs.append(
                    _start_job(
                        db.url(),
                        "from knowledge.services import source_ingest; "
                        f"print(source_ingest(source_id={source_id}).status)",
                        tmp / "ingest.log",
                    )
                )
                jobs.append(
                    _start_job(
                        db.url(),
                        "from training.retrieval import tuning_run; "
                        f"print(tuning_run(tuning_id={tuning_id}))",
                        tmp / "tuning.log",
                    )
                )
                started = time.monotonic()
                while time.monotonic() - started < args.max_seconds:
                    result = await _chat_round(make, args.clients, ROUND_SECONDS)
                    result["rss"] = _rss_mb(proc.pid)
                    result["busy"] = [j.poll() is None for j in jobs]
                    rounds.append(result)
                    print(
                        f"round {len(rounds):>2}: {result['n']} answers, p95 "
                        f"{result['p95']:.0f} ms, {len(result['errors'])} errors, web RSS "
                        f"{result['rss']:.0f} MB; ingestion "
                        f"{'running' if result['busy'][0] else 'done'}, tuning "
                        f"{'running' if result['busy'][1] else 'done'}",
                        flush=True,
                    )
                    for error in result["errors"][:3]:
                        print(f"    error: {error}")
                    if not any(result["busy"]):
                        break
                return idle
            finally:
                await shared.aclose()

        try:
            idle = asyncio.run(soak())
        finally:
            for job in jobs:
                if job.poll() is None:
                    stop_process(job)
            stop_process(proc)
        ingest = Source.objects.get(pk=source_id)
        tuning = RetrievalTuning.objects.get(pk=tuning_id)
        log = (tmp / "uvicorn.log").read_text()
        server_errors = log.count("Traceback")
        job_logs = {n: (tmp / f"{n}.log").read_text()[-1500:] for n in ("ingest", "tuning")}

    busy = [r for r in rounds if any(r["busy"])] or rounds
    loaded_ms = [x for r in busy for x in [r["p95"]] if r["n"]]
    errors = len(idle["errors"]) + sum(len(r["errors"]) for r in rounds)
    loaded_p95 = statistics.median(loaded_ms) if loaded_ms else float("nan")
    rss = [r["rss"] for r in rounds]
    print(
        f"chat p95 while ingesting and tuning: {loaded_p95:.0f} ms (median of {len(busy)} rounds, "
        f"worst {max(loaded_ms, default=float('nan')):.0f} ms) beside idle p95 "
        f"{idle['p95']:.0f} ms; {errors} failed requests, {server_errors} server tracebacks"
    )
    print(
        f"web RSS: idle {idle['rss']:.0f} MB, first round {rss[0] if rss else 0:.0f} MB, last "
        f"{rss[-1] if rss else 0:.0f} MB; ingestion {ingest.status} ({ingest.chunk_count} "
        f"chunks), tuning {tuning.status}"
    )
    for name, text in job_logs.items():
        if "Traceback" in text:
            print(f"{name} job failed:\n{text}")
    summary = {
        "clients": args.clients,
        "idle_p95_ms": round(idle["p95"], 1),
        "loaded_p95_ms": round(loaded_p95, 1),
        "loaded_worst_p95_ms": round(max(loaded_ms, default=0), 1),
        "rounds": len(rounds),
        "answers": idle["n"] + sum(r["n"] for r in rounds),
        "errors": errors,
        "server_tracebacks": server_errors,
        "rss_idle_mb": round(idle["rss"]),
        "rss_first_mb": round(rss[0]) if rss else None,
        "rss_last_mb": round(rss[-1]) if rss else None,
        "ingestion": ingest.status,
        "tuning": tuning.status,
        "p95_all_ms": round(_percentile([r["p95"] for r in rounds], 95), 1) if rounds else None,
    }
    print(json.dumps(summary), flush=True)
    return 1 if errors or server_errors else 0


if __name__ == "__main__":
    sys.exit(main())
