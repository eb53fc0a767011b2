"""`make run`: services, migrations, demo data, then web + worker + beat until Ctrl-C.

Everything started here is stopped on Ctrl-C (SIGINT) or SIGTERM, services included
(unless DATABASE_URL / REDIS_URL point at servers we did not start). A worker or beat that exits
(killed, out of memory) is started again and the log says so; the web server exiting, or a child
that keeps exiting (RESTARTS_MAX within RESTART_WINDOW seconds), stops the whole stack.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))
sys.path.insert(1, str(ROOT))
import services  # noqa: E402

from askhandle.devtools import WorkerDidNotStart, start_celery_worker  # noqa: E402

PY = sys.executable
HOST = os.environ.get("HOST", "127.0.0.1")
PORT = os.environ.get("PORT", "8000")


def web_workers() -> int:
    """uvicorn worker processes: WEB_CONCURRENCY, else one per CPU core. Each loads its own
    models on first use (about 0.7 GB with MiniLM; each logs its resident memory then)."""
    value = os.environ.get("WEB_CONCURRENCY", "").strip()
    return max(1, int(value)) if value else max(1, os.cpu_count() or 1)


RESTARTED = ("worker", "beat")  # the web server exiting is a configuration error: stop
RESTARTS_MAX = 5
RESTART_WINDOW = 60.0


def main() -> int:
    os.chdir(ROOT)
    t0 = time.monotonic()
    # Stop on exit only what this run started: a server already up (another `make run`, or
    # `make test` beside it) keeps running.
    external = bool(os.environ.get("DATABASE_URL") and os.environ.get("REDIS_URL"))
    already = services.running()
    env = {**os.environ, **services.up(), "PYTHONUNBUFFERED": "1"}
    started_services = set() if external else {"postgres", "redis"} - already
    env.setdefault("ASKHANDLE_SITE_URL", f"http://{HOST}:{PORT}")
    manage = [PY, "manage.py"]
    subprocess.run([*manage, "migrate", "--no-input"], env=env, check=True)
    subprocess.run([*manage, "seed_demo"], env=env, check=True)

    procs = {
        "web": [
            PY,
            "-m",
            "uvicorn",
            "askhandle.asgi:application",
            "--host",
            HOST,
            "--port",
            PORT,
            "--workers",
            str(web_workers()),
            "--no-access-log",
            "--no-proxy-headers",  # X-Forwarded-For counts only from ASKHANDLE_TRUSTED_PROXIES
        ],
        "worker": None,  # askhandle.devtools.start_celery_worker
        "beat": [
            PY,
            "-m",
            "celery",
            "-A",
            "askhandle",
            "beat",
            "--loglevel",
            "INFO",
            "--schedule",
            str(services.RUN / "celerybeat-schedule"),
        ],
    }

    def start(name: str) -> subprocess.Popen:
        if name != "worker":
            return subprocess.Popen(procs[name], env=env, start_new_session=True)
        # Its output is copied to ours; returns once it consumes (a worker that exits or hangs
        # while starting is handed back ended: the loop below restarts it or stops).
        try:
            return start_celery_worker(env)
        except WorkerDidNotStart as failed:
            print(f"[run] {failed}", flush=True)
            return failed.proc

    # The worker last: the web server and beat start while it gets ready.
    children = {name: start(name) for name in ("web", "beat", "worker")}
    restarts: dict[str, list[float]] = {name: [] for name in procs}
    # One-off, in the background: the first generated answer would otherwise wait ~1 minute
    # for the local chat model's one-time conversion. Not supervised: it simply ends.
    prepare = subprocess.Popen([*manage, "prepare_models"], env=env, start_new_session=True)

    stopping = False

    def stop(*_):
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)

    print(
        f"\n  AskHandle is running at http://{HOST}:{PORT}/  (set up in {time.monotonic() - t0:.0f} s, "
        f"{web_workers()} web workers: WEB_CONCURRENCY)\n"
        "  Demo login: demo@askhandle.local / demo-password-123\n"
        f"  Demo bot's public chat: http://{HOST}:{PORT}/c/demo/\n"
        f"  Dutch demo bot (multilingual): http://{HOST}:{PORT}/c/demo-nl/\n"
        "  Admin: same login at /admin/.   Press Ctrl-C to stop everything.\n",
        flush=True,
    )
    code = 0
    while not stopping:
        for name, proc in list(children.items()):
            if proc.poll() is None or stopping:
                continue
            now = time.monotonic()
            recent = [t for t in restarts[name] if now - t < RESTART_WINDOW]
            if name in RESTARTED and len(recent) < RESTARTS_MAX:
                restarts[name] = [*recent, now]
                print(
                    f"[run] {name} exited with {proc.returncode}; restarting it "
                    f"({len(recent) + 1} in the last {RESTART_WINDOW:.0f} s).",
                    flush=True,
                )
                try:  # what is left of its process group (a killed worker's pool children)
                    os.killpg(proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                children[name] = start(name)
            else:
                print(f"[run] {name} exited with {proc.returncode}; stopping the rest.", flush=True)
                stopping, code = True, 1
        time.sleep(0.5)

    print("\n[run] stopping web, worker and beat…", flush=True)
    for proc in [*children.values(), prepare]:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
    deadline = time.monotonic() + 20
    for proc in children.values():
        try:
            proc.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
    if started_services:
        services.down(only=started_services)
    print("[run] stopped.", flush=True)
    return code


if __name__ == "__main__":
    sys.exit(main())
