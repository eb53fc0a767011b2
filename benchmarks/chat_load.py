"""Load on the public chat and the OpenAI-compatible API, beside the server's floor.

    python -m benchmarks.chat_load [--concurrency 1,10,50] [--seconds 10] [--requests 400] [--workers N] [--sse]

Starts uvicorn (askhandle.asgi) on 127.0.0.1 against a throwaway database holding one bot whose
FAQ answers every question directly (the direct-FAQ path: no chat model). Closed-loop httpx
clients then measure requests/s and latency percentiles at each concurrency for:
  floor  GET /healthz (a static response through the same server and middleware)
  chat   POST /c/<slug>/ask/ (JSON; --sse reads the event stream to the end instead)
  api    POST /v1/chat/completions (non-streaming)
Each chat client has its own cookies, so its own conversation. Rate limits are lifted. Every
answer embeds the question with the local model (all-MiniLM-L6-v2): that cost is in the figures.
The load generator shares the machine's cores with the server, so figures are a lower bound.
The server runs with production settings (DEBUG off, collected static files, a pool of database
connections per worker); DATABASE_POOL=0 in the environment measures a connection per request.

Floor, chat and /v1 take turns (--rounds, default 4) and throughput counts what was answered
while every client still had a request in flight: a shared host's drifting speed then moves the
floor and the chat together, and the drain at the end of a turn weighs on neither.

Query embedding under load: the server logs every micro-batch (providers.batching, size and time
in the model); texts per second of model time during the highest-concurrency chat row, against
raw MiniLM batch throughput (batches of 32, one thread, the server's engine) measured here in the
same run while the server is idle: `embed_ratio`; `embed_ratio_cpu` counts the batcher thread's
processor time instead of wall time (what the model costs, without the time other processes had
the core). Where that ratio goes, measured after the server stopped: the batch sizes the load
offered, replayed on the idle machine with the load's questions, against batches of 32 of them
(`embed_batch_factor`: what batches that small allow), and the model under load against that
replay (`embed_load_factor`: waiting for a core and the GIL). Then the embedding stage when
questions pile up (`embed_saturated_ratio`): 64 questions waiting at once through the batcher,
awaited on an event loop as the views await theirs, in turns with raw batches of 32.
Ends with one JSON line (`make bench-load`).
Figures measured so far: benchmarks/RESULTS.md (Chat under load).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

from benchmarks.embed_engines import raw_embedding_tps

ROOT = Path(__file__).resolve().parents[1]
FAQ = [
    ("How long does shipping take?", "Orders ship in 3-5 business days."),
    ("How do I reset my password?", "Click **Forgot password** on the login page."),
    ("What is your return policy?", "You can return unused items within 30 days."),
    ("Do you ship internationally?", "Yes, to 40 countries; duties are shown at checkout."),
    ("How can I contact support?", "Email support@example.com or use this chat."),
]
# The same shop in Dutch: `--language nl` loads a Dutch bot (the multilingual model, Dutch text
# search) with it, beside the English one (`make bench-load` runs both).
FAQ_NL = [
    ("Hoe lang duurt de verzending?", "Bestellingen worden binnen 3-5 werkdagen verzonden."),
    ("Hoe stel ik mijn wachtwoord opnieuw in?", "Klik op **Wachtwoord vergeten** bij inloggen."),
    ("Wat is jullie retourbeleid?", "Ongebruikte artikelen kun je binnen 30 dagen terugsturen."),
    (
        "Verzenden jullie naar het buitenland?",
        "Ja, naar 40 landen; invoerrechten zie je bij het afrekenen.",
    ),
    ("Hoe bereik ik de klantenservice?", "Mail support@example.com of gebruik deze chat."),
]
FAQS = {"en": FAQ, "nl": FAQ_NL}


def _setup_django():
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "askhandle.settings")
    import django

    django.setup()


def _admin_sql(sql: str) -> None:
    import psycopg
    from django.db import connection

    s = connection.settings_dict
    with psycopg.connect(
        dbname="postgres",
        user=s["USER"],
        password=s["PASSWORD"] or None,
        host=s["HOST"] or None,
        port=s["PORT"] or None,
        autocommit=True,
    ) as conn:
        conn.execute(sql)


class ThrowawayDatabase:
    """A fresh database on the configured server, migrated, dropped on exit."""

    def __init__(self):
        self.name = f"askhandle_bench_{os.getpid()}"

    def __enter__(self):
        from django.core.management import call_command
        from django.db import connection

        self.original = connection.settings_dict["NAME"]
        _admin_sql(f'DROP DATABASE IF EXISTS "{self.name}"')
        _admin_sql(f'CREATE DATABASE "{self.name}"')
        connection.close()
        connection.settings_dict["NAME"] = self.name
        call_command("migrate", verbosity=0)
        return self

    def url(self) -> str:
        from conftest import database_url_for_tests  # builds a URL from the live connection

        return database_url_for_tests()

    def __exit__(self, *exc):
        from django.db import connection

        connection.close()
        connection.settings_dict["NAME"] = self.original
        _admin_sql(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)')


def _seed(language: str = "en") -> tuple[str, str]:
    """One bot with the FAQ above in `language` (real embeddings) and an API key. Returns
    (slug, key)."""
    from accounts.services import account_signup
    from bots.services import bot_create
    from chat.apikeys import api_key_create
    from knowledge.services import faq_entries_import, source_ingest

    user = account_signup(
        email="bench@example.com", password="bench-password-123", workspace_name="Bench"
    )
    bot = bot_create(
        workspace=user.workspaces.get(), name="Bench Bot", slug="bench", language=language
    )
    # The knowledge goes through the real ingestion, as an owner's upload would.
    source = faq_entries_import(
        bot=bot, name="FAQ", entries=[{"question": q, "answer": a} for q, a in FAQ], enqueue=False
    )
    source_ingest(source_id=source.pk)
    if language != "en":
        # Fitted thresholds, as the worker fits them after an upload: the defaults were set for
        # MiniLM's scores, and e5 scores every entry of a small FAQ above their direct threshold.
        from training.calibration import calibration_run

        calibration_run(bot_id=bot.pk)
    _, key = api_key_create(bot=bot, name="bench")
    return bot.slug, key


def _start_server(database_url: str, workers: int, log_path: Path) -> tuple[subprocess.Popen, str]:
    from django.conf import settings

    from askhandle.devtools import start_uvicorn

    env = {
        "DATABASE_URL": database_url,
        "ASKHANDLE_RATE_LIMITS": "0",
        "ASKHANDLE_REDIS_PREFIX": f"bench{os.getpid()}",
        "ASKHANDLE_MODEL_CACHE": str(settings.LOCAL_MODEL_CACHE),
        # Production settings: no debug query log, a pool of database connections per worker
        # (askhandle.asgi); plain http on loopback, so cookies are not marked Secure.
        "DJANGO_DEBUG": "0",
        "DJANGO_SECRET_KEY": "bench-" + os.urandom(16).hex(),
        "DJANGO_SECURE_COOKIES": "0",
        "DJANGO_STATIC_ROOT": str(log_path.parent / "static"),
        # Every question pays for its embedding: the figures stay those of uncached questions.
        "ASKHANDLE_QUERY_EMBED_CACHE": "0",
        # DATABASE_POOL=0 measures a connection per request instead of the pool.
        "DATABASE_POOL": os.environ.get("DATABASE_POOL", "1"),
        "LOG_LEVEL": "INFO",  # each worker's memory once its model has loaded
        "ASKHANDLE_BATCH_LOG_LEVEL": "DEBUG",  # one line per embedding batch: embed_ratio
    }
    # Without DEBUG the pages name their static files through the collected manifest.
    subprocess.run(
        [sys.executable, "manage.py", "collectstatic", "--no-input", "-v", "0"],
        cwd=ROOT,
        env={**os.environ, **env},
        check=True,
    )
    # Keep-alive past the rounds' pauses: uvicorn's 5 s default closed clients' idle connections
    # between turns (a ReadError on reuse, and the next turn paid for new connections).
    return start_uvicorn(
        env,
        log_path,
        timeout=120,
        extra_args=("--workers", str(workers), "--timeout-keep-alive", "120"),
    )


def _percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(p / 100 * len(ordered)) - 1))
    return ordered[index]


async def _run_level(senders: list, total: int, seconds: float) -> dict:
    """Closed loop: one client per sender, `total` requests or `seconds`, whichever ends first.

    Throughput counts the requests answered while every client still had one in flight (until
    the first client found the cap reached), over that time: the drain at the end, when fewer
    and fewer clients wait on the slowest answers, would otherwise weigh on short turns."""
    latencies: list[float] = []
    finished: list[float] = []
    errors: list[str] = []
    issued = 0
    closed_at: float | None = None
    deadline = time.perf_counter() + seconds

    async def worker(send):
        nonlocal issued, closed_at
        n = 0
        while True:
            now = time.perf_counter()
            if issued >= total or now >= deadline:
                closed_at = closed_at or now
                return
            issued += 1
            try:
                await send(n)
                finished.append(time.perf_counter())
                latencies.append(finished[-1] - now)
            except Exception as exc:  # counted and shown, never hidden
                errors.append(repr(exc)[:200])
            n += 1

    started, wall = time.perf_counter(), time.time()
    await asyncio.gather(*(worker(send) for send in senders))
    steady = (closed_at or time.perf_counter()) - started
    return {
        "ms": [x * 1000 for x in latencies],
        "errors": errors,
        "answered": sum(1 for t in finished if t <= started + steady),
        "elapsed": steady,
        "windows": [(wall, wall + steady)],
    }


async def measure_clients(make, clients: int, total: int, seconds: float) -> dict:
    """One closed-loop turn with `clients` new clients of a target (`make(index)` gives one's
    send): the row `_merge` makes of it (n, rps, percentiles, errors). benchmarks.soak uses it."""
    senders = await asyncio.gather(*(make(i) for i in range(clients)))
    return _merge([await _run_level(list(senders), total, seconds)])


def _merge(parts: list[dict]) -> dict:
    """One row from a target's rounds: requests/s over the time they ran, pooled percentiles."""
    ms = [x for part in parts for x in part["ms"]]
    elapsed = sum(part["elapsed"] for part in parts)
    answered = sum(part["answered"] for part in parts)
    return {
        "n": len(ms),
        "errors": [e for part in parts for e in part["errors"]],
        "rps": answered / elapsed if elapsed else 0.0,
        "p50": statistics.median(ms) if ms else float("nan"),
        "p95": _percentile(ms, 95) if ms else float("nan"),
        "p99": _percentile(ms, 99) if ms else float("nan"),
        "windows": [w for part in parts for w in part["windows"]],
    }


def _targets(base: str, slug: str, key: str, sse: bool):
    limits = httpx.Limits(max_connections=200, max_keepalive_connections=200)
    shared = httpx.AsyncClient(base_url=base, timeout=60, limits=limits)

    async def floor(_index):
        async def send(_n):
            r = await shared.get("/healthz")
            r.raise_for_status()

        return send

    async def chat(index):
        client = httpx.AsyncClient(base_url=base, timeout=60)  # own cookies: own conversation
        page = await client.get(f"/c/{slug}/")
        token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text).group(1)
        headers = {
            "X-CSRFToken": token,
            "Referer": f"{base}/c/{slug}/",
            "Accept": "text/event-stream" if sse else "application/json",
        }

        async def send(n):
            data = {"message": FAQ[(index + n) % len(FAQ)][0]}
            if sse:
                async with client.stream(
                    "POST", f"/c/{slug}/ask/", data=data, headers=headers
                ) as r:
                    r.raise_for_status()
                    body = "".join([chunk async for chunk in r.aiter_text()])
                if "event: done" not in body:
                    raise RuntimeError("stream ended without a done event")
            else:
                r = await client.post(f"/c/{slug}/ask/", data=data, headers=headers)
                r.raise_for_status()
                if r.json()["message"]["path"] != "direct":
                    raise RuntimeError(
                        f"expected a direct answer, got {r.json()['message']['path']}"
                    )

        return send

    async def api(index):
        headers = {"Authorization": f"Bearer {key}"}

        async def send(n):
            question = FAQ[(index + n) % len(FAQ)][0]
            r = await shared.post(
                "/v1/chat/completions",
                headers=headers,
                json={"model": slug, "messages": [{"role": "user", "content": question}]},
            )
            r.raise_for_status()
            if r.json()["askhandle"]["path"] != "direct":
                raise RuntimeError("expected a direct answer")

        return send

    label = "chat SSE" if sse else "chat JSON"
    return shared, [("floor /healthz", floor), (label, chat), ("api /v1/chat", api)]


async def _measure(base, slug, key, levels, seconds, total, sse, rounds) -> list[tuple]:
    """Each level's targets take turns, `rounds` times (floor, chat, api, floor, ...), each
    turn with its share of the request and time caps: a machine whose speed drifts during
    the run (a shared host) slows the floor and the chat alike, so their ratio holds."""
    shared, targets = _targets(base, slug, key, sse)
    rows = []
    try:
        for _name, make in targets:  # warm-up: connections, model, caches
            await measure_clients(make, 2, 10, 30)
        for concurrency in levels:
            # Clients (and the chat's page loads) are made before the clock starts.
            senders = {
                name: await asyncio.gather(*(make(i) for i in range(concurrency)))
                for name, make in targets
            }
            parts = {name: [] for name, _ in targets}
            for _ in range(rounds):
                for name, _make in targets:
                    parts[name].append(
                        await _run_level(senders[name], total // rounds, seconds / rounds)
                    )
            for name, _ in targets:
                result = _merge(parts[name])
                rows.append((name, concurrency, result))
                print(
                    f"{name:<16} {concurrency:>4} {result['n']:>6} {result['rps']:>8.1f} "
                    f"{result['p50']:>8.1f} {result['p95']:>8.1f} {result['p99']:>8.1f} {len(result['errors']):>6}",
                    flush=True,
                )
                for error in result["errors"][:3]:
                    print(f"    error: {error}")
    finally:
        await shared.aclose()
    return rows


BATCH_LINE = re.compile(r"embed batch texts=(\d+) busy_ms=([\d.]+) cpu_ms=([\d.]+) at=([\d.]+)")


def _embedding_under_load(log: str, windows: list[tuple[float, float]]) -> dict:
    """Texts per second of model time, from the server's batch lines inside `windows`: of wall
    time in the model (`tps`) and of the batcher thread's processor time (`cpu_tps`)."""
    batches = [
        (int(n), float(ms), float(cpu))
        for n, ms, cpu, at in BATCH_LINE.findall(log)
        if any(start <= float(at) <= end for start, end in windows)
    ]
    texts = sum(n for n, _, _ in batches)
    busy_s = sum(ms for _, ms, _ in batches) / 1000
    cpu_s = sum(cpu for _, _, cpu in batches) / 1000
    return {
        "texts": texts,
        "batches": len(batches),
        "mean_batch": texts / len(batches) if batches else 0.0,
        "tps": texts / busy_s if busy_s else 0.0,
        "cpu_tps": texts / cpu_s if cpu_s else 0.0,
        "sizes": [n for n, _, _ in batches],
    }


def _embedding_breakdown(sizes: list[int], rounds: int = 3) -> dict:
    """Measured after the server stopped, on the idle machine, in this process:
    - the same batch sizes the chat load offered, on the load's own questions (`replay_tps`),
      against batches of 32 of those questions: how much of raw batch speed those sizes allow;
    - the embedding stage when questions pile up: twice EMBED_BATCH_MAX questions waiting at
      once, awaited on an event loop as the views await theirs, through the batcher, taking
      turns with the raw reference (`rounds` times) so a drifting host moves both."""
    from django.conf import settings

    from benchmarks.embed_engines import batcher_tps, raw_embedding_tps, reference_texts, replay_tps

    questions = [q for q, _ in FAQ]
    breakdown = {
        "replay_tps": replay_tps(sizes, questions) if sizes else 0.0,
        "batch32_tps": replay_tps([32], questions),
    }
    raw, piled, batches = [], [], []
    waiting = 2 * settings.EMBED_BATCH_MAX
    for _ in range(rounds):
        raw.append(raw_embedding_tps(seconds=1.5))
        result = batcher_tps(waiting, reference_texts())
        piled.append(result["tps"])
        batches.append(result["mean_batch"])
    breakdown.update(
        waiting=waiting,
        saturated_tps=statistics.mean(piled),
        saturated_raw_tps=statistics.mean(raw),
        saturated_mean_batch=statistics.mean(batches),
    )
    return breakdown


def _multilingual_tps(rounds: int = 3) -> float:
    """multilingual-e5-small's raw query throughput in batches of 32 (the best of `rounds`)."""
    import providers

    local = providers.get_provider("local")
    texts = [q for q, _ in FAQ_NL] * 7  # 35 questions: one batch of 32 and a short one
    local.embed(texts[:4], model="multilingual-e5-small")
    best = 0.0
    for _ in range(rounds):
        started = time.perf_counter()
        local.embed(texts[:32], model="multilingual-e5-small")
        best = max(best, 32 / (time.perf_counter() - started))
    return best


def _wait_for_models(log_path: Path, workers: int, timeout: float = 180) -> None:
    """Until every worker has loaded its embedding model: a worker importing torch holds the
    GIL for seconds, and the floor measured then would be that of a server still starting."""
    deadline = time.monotonic() + timeout
    while log_path.read_text().count("Embedding model loaded in process") < workers:
        if time.monotonic() > deadline:
            raise RuntimeError("the web workers did not load their models in time")
        time.sleep(0.5)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--concurrency", default="1,10,50")
    parser.add_argument("--seconds", type=float, default=12.0, help="time cap per measurement")
    parser.add_argument("--requests", type=int, default=600, help="request cap per measurement")
    parser.add_argument(
        "--workers", type=int, default=os.cpu_count() or 1, help="uvicorn worker processes"
    )
    parser.add_argument(
        "--rounds",
        type=int,
        default=4,
        help="turns each target takes per level (interleaved; the caps are split between them)",
    )
    parser.add_argument(
        "--sse", action="store_true", help="read the chat's event stream instead of JSON"
    )
    parser.add_argument("--language", default="en", choices=sorted(FAQS), help="the bot's language")
    args = parser.parse_args(argv)
    global FAQ
    FAQ = FAQS[args.language]
    levels = [int(x) for x in args.concurrency.split(",") if x]

    _setup_django()
    logging.getLogger("httpx").setLevel(logging.WARNING)
    sys.path.insert(0, str(ROOT))
    with ThrowawayDatabase() as db, tempfile.TemporaryDirectory() as tmp:
        slug, key = _seed(args.language)
        from django.conf import settings

        if args.language == "en":
            raw_tps = raw_embedding_tps()
            torch_tps = raw_embedding_tps(engine="torch")
            print(
                f"raw MiniLM batch throughput (batches of 32, this process): {raw_tps:.0f} "
                f"texts/s on the server's engine ({settings.LOCAL_EMBED_ENGINE}); "
                f"PyTorch {torch_tps:.0f}"
            )
        else:
            raw_tps, torch_tps = _multilingual_tps(), 0.0
            print(
                f"{args.language} bot on multilingual-e5-small: raw batch throughput (batches "
                f"of 32, this process) {raw_tps:.0f} texts/s"
            )
        proc, base = _start_server(db.url(), args.workers, Path(tmp) / "uvicorn.log")
        _wait_for_models(Path(tmp) / "uvicorn.log", args.workers)
        try:
            print(
                f"uvicorn ({args.workers} worker) on {base}, {os.cpu_count()} CPUs; "
                f"cap {args.requests} requests / {args.seconds:.0f} s per row; direct-FAQ answers"
            )
            print(
                f"{'endpoint':<16} {'conc':>4} {'reqs':>6} {'req/s':>8} {'p50 ms':>8} {'p95 ms':>8} {'p99 ms':>8} {'errors':>6}"
            )
            rows = asyncio.run(
                _measure(
                    base, slug, key, levels, args.seconds, args.requests, args.sse, args.rounds
                )
            )
        finally:
            from askhandle.devtools import stop_process

            stop_process(proc)
            log = (Path(tmp) / "uvicorn.log").read_text()
            if "Traceback" in log:
                first = log.index("Traceback")
                print("server errors (uvicorn log, first one):\n" + log[first : first + 4000])
            memory = re.findall(r"Embedding model loaded in process \d+ \([^)]*\): (\d+) MB", log)
    worst = max((r for r in rows if r[0] != "floor /healthz"), key=lambda r: r[1], default=None)
    if worst:
        figures = ", ".join(
            f"{name} {r['p95']:.0f} ms"
            for name, c, r in rows
            if c == worst[1] and name != "floor /healthz"
        )
        print(f"goal p95 < 100 ms at {worst[1]} concurrent (direct answers): {figures}")
    errors = sum(len(r["errors"]) for _, _, r in rows)
    top = max(levels)
    at_top = {name.split()[0]: r for name, c, r in rows if c == top}
    chat = at_top.get("chat", {})
    embedding = _embedding_under_load(log, chat.get("windows", []))
    print(
        f"query embedding under load ({top} chat clients): {embedding['tps']:.0f} texts/s of model "
        f"time in {embedding['batches']} batches (mean {embedding['mean_batch']:.1f} texts), "
        f"{embedding['cpu_tps']:.0f} texts/s of the batcher thread's processor time; "
        f"raw batch {raw_tps:.0f} texts/s; worker RSS after model load: {', '.join(memory)} MB"
    )
    if args.language != "en":  # the breakdown replays MiniLM's batches: English only
        summary = {
            "language": args.language,
            "clients": top,
            "workers": args.workers,
            "floor_rps": round(at_top["floor"]["rps"], 1),
            "chat_rps": round(chat["rps"], 1),
            "chat_p95_ms": round(chat["p95"], 1),
            "api_rps": round(at_top["api"]["rps"], 1),
            "chat_vs_floor_rps": round(chat["rps"] / at_top["floor"]["rps"], 3),
            "chat_vs_floor_p95": round(chat["p95"] / at_top["floor"]["p95"], 2),
            "embed_under_load_tps": round(embedding["tps"], 1),
            "embed_raw_tps": round(raw_tps, 1),
            "embed_mean_batch": round(embedding["mean_batch"], 1),
            "errors": errors,
        }
        print(json.dumps(summary), flush=True)
        return 1 if errors else 0
    breakdown = _embedding_breakdown(embedding["sizes"])
    batch_factor = breakdown["replay_tps"] / breakdown["batch32_tps"]
    load_factor = embedding["tps"] / breakdown["replay_tps"] if breakdown["replay_tps"] else 0.0
    saturated_ratio = breakdown["saturated_tps"] / breakdown["saturated_raw_tps"]
    print(
        f"  where the ratio goes: the load's batch sizes, replayed on the idle machine with its "
        f"questions: {breakdown['replay_tps']:.0f} texts/s against {breakdown['batch32_tps']:.0f} "
        f"in batches of 32 ({batch_factor:.2f}: what batches that small allow); the model under "
        f"the load got {load_factor:.2f} of that (waiting for a core and the GIL)"
    )
    print(
        f"  when questions pile up ({breakdown['waiting']} waiting at once, through the "
        f"batcher, idle machine): {breakdown['saturated_tps']:.0f} texts/s in batches "
        f"of {breakdown['saturated_mean_batch']:.1f}, against raw batches of 32 "
        f"{breakdown['saturated_raw_tps']:.0f} in turns with it: {saturated_ratio:.2f}"
    )
    summary = {
        "clients": top,
        "workers": args.workers,
        "floor_rps": round(at_top["floor"]["rps"], 1),
        "floor_p95_ms": round(at_top["floor"]["p95"], 1),
        "chat_rps": round(chat["rps"], 1),
        "chat_p95_ms": round(chat["p95"], 1),
        "api_rps": round(at_top["api"]["rps"], 1),
        "api_p95_ms": round(at_top["api"]["p95"], 1),
        "chat_vs_floor_rps": round(chat["rps"] / at_top["floor"]["rps"], 3),
        "chat_vs_floor_p95": round(chat["p95"] / at_top["floor"]["p95"], 2),
        "embed_under_load_tps": round(embedding["tps"], 1),
        "embed_raw_tps": round(raw_tps, 1),
        "embed_raw_torch_tps": round(torch_tps, 1),
        "embed_ratio": round(embedding["tps"] / raw_tps, 3) if raw_tps else None,
        "embed_ratio_cpu": round(embedding["cpu_tps"] / raw_tps, 3) if raw_tps else None,
        "embed_mean_batch": round(embedding["mean_batch"], 1),
        "embed_batch_factor": round(batch_factor, 3),
        "embed_load_factor": round(load_factor, 3),
        "embed_saturated_tps": round(breakdown["saturated_tps"], 1),
        "embed_saturated_ratio": round(saturated_ratio, 3),
        "embed_saturated_mean_batch": round(breakdown["saturated_mean_batch"], 1),
        "worker_rss_mb": [int(m) for m in memory],
        "errors": errors,
    }
    print(json.dumps(summary), flush=True)
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
