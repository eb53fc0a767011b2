"""Local server processes for tests, benchmarks and `make run`: a free port, uvicorn on a given
database, a Celery worker that is ready to consume.

Nothing here runs in production; it lives in the package so the test suite, `benchmarks/` and
scripts/run.py share one implementation.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import deque
from collections.abc import Callable
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def stop_process(proc: subprocess.Popen, timeout: float = 15) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()


def start_uvicorn(
    env_extra: dict, log_path: Path, timeout: float = 60, extra_args: tuple = ()
) -> tuple[subprocess.Popen, str]:
    """uvicorn serving askhandle.asgi:application on 127.0.0.1:<free port>; waits for /healthz.

    Returns (process, base URL). `env_extra` usually carries DATABASE_URL and the Redis prefix.
    """
    port = free_port()
    env = {**os.environ, "PYTHONUNBUFFERED": "1", **env_extra}
    env.pop("PYTEST_VERSION", None)  # the child is a server, not a test run
    env.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "uvicorn",
            "askhandle.asgi:application",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--log-level",
            "warning",
            "--no-access-log",
            "--no-proxy-headers",  # as every launcher: askhandle/client_ip.py decides
            *extra_args,
        ],
        cwd=ROOT,
        env=env,
        stdout=log_path.open("w"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + timeout
    while True:
        try:
            if httpx.get(base + "/healthz", timeout=2).status_code == 200:
                return proc, base
        except httpx.HTTPError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            raise RuntimeError(f"uvicorn did not start:\n{log_path.read_text()[-3000:]}")
        time.sleep(0.2)


WORKER_QUEUES = "default,ingest,training"
# What celery.apps.worker logs once it consumes: "<name>@<host> ready." ("already." is no match).
WORKER_READY = re.compile(r"@\S+ ready\.\s*$", re.MULTILINE)
# A started worker, whether it is ready yet, and the end of its output.
Started = tuple[subprocess.Popen, Callable[[], bool], Callable[[], str]]


class WorkerDidNotStart(RuntimeError):
    """The worker exited, or did not say it was ready in time (its process group is killed then).
    `proc` is the ended process."""

    def __init__(self, message: str, proc: subprocess.Popen):
        super().__init__(message)
        self.proc = proc


def start_celery_worker(
    env: dict, log_path: Path | None = None, *, name: str | None = None, timeout: float = 90
) -> subprocess.Popen:
    """`celery -A askhandle worker` on every queue, one pool process, in its own session (its
    process group is its pid); returns once the worker logs "ready." (it consumes from then on).

    Its output goes to `log_path` (the Popen's `log_path` then), or, when None, is copied line by
    line to this process's stdout. `name`: the worker's node name (-n), celery's default when
    None. Raises WorkerDidNotStart, with the end of the output, if the worker exits first or is not
    ready within `timeout` seconds.
    """
    command = [sys.executable, "-m", "celery", "-A", "askhandle", "worker"]
    command += ["-Q", WORKER_QUEUES, "-c", "1", "--loglevel", "INFO"]
    if name:
        command += ["-n", name]
    if log_path is not None:
        proc, is_ready, tail = _start_worker_logging_to(log_path, command, env)
    else:
        proc, is_ready, tail = _start_worker_echoing(command, env)
    proc.log_path = log_path
    _wait_until_ready(proc, is_ready, tail, timeout)
    return proc


def _start_worker_logging_to(log_path: Path, command: list[str], env: dict) -> Started:
    """A worker writing its output to `log_path`."""
    with log_path.open("w") as log:
        proc = subprocess.Popen(
            command,
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def is_ready() -> bool:
        return WORKER_READY.search(log_path.read_text(errors="replace")) is not None

    def tail() -> str:
        return log_path.read_text(errors="replace")[-3000:]

    return proc, is_ready, tail


def _start_worker_echoing(command: list[str], env: dict) -> Started:
    """A worker whose output a thread copies to this process's stdout, watching for the ready
    line."""
    ready = threading.Event()
    recent: deque[str] = deque(maxlen=60)  # the output's end, when it is not in a file
    proc = subprocess.Popen(
        command,
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        errors="replace",
        bufsize=1,
        start_new_session=True,
    )

    def copy_output() -> None:
        for line in proc.stdout:
            sys.stdout.write(line)
            sys.stdout.flush()
            recent.append(line)
            if WORKER_READY.search(line):
                ready.set()

    threading.Thread(target=copy_output, name="celery-worker-output", daemon=True).start()

    def tail() -> str:
        return "".join(recent)[-3000:]

    return proc, ready.is_set, tail


def _wait_until_ready(
    proc: subprocess.Popen, is_ready: Callable[[], bool], tail: Callable[[], str], timeout: float
) -> None:
    """Poll until the worker is ready; if it exits or `timeout` passes first, kill its process
    group and raise WorkerDidNotStart with the output's end."""
    deadline = time.monotonic() + timeout
    while not is_ready():
        if proc.poll() is not None or time.monotonic() > deadline:
            try:
                os.killpg(proc.pid, signal.SIGKILL)  # the main process and any pool children
            except ProcessLookupError:
                pass
            proc.wait()
            raise WorkerDidNotStart(f"Celery worker did not start:\n{tail()}", proc)
        time.sleep(0.2)
