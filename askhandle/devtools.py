"""Local server processes for tests and benchmarks: a free port, uvicorn on a given database.

Nothing here runs in production; it lives in the package so the test suite and `benchmarks/`
share one implementation.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
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
