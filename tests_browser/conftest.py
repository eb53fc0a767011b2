"""Browser fixtures: the site under uvicorn on the test database, a customer's site that embeds
the widget, and Debian's chromium driven by Playwright (sync API).

`playwright install` cannot download browsers here; Debian's /usr/bin/chromium is used instead
(apt-get install chromium, see scripts/install-system-deps.sh).
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from conftest import ROOT, database_url_for_tests

CHROMIUM = os.environ.get("ASKHANDLE_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
]
SCREENS = Path(os.environ.get("ASKHANDLE_SCREENS", "/tmp/screens"))

# Playwright's sync API keeps an event loop on the test's thread; Django would then refuse ORM
# calls from the test body ("async context"). The test code is still plain sequential code.
os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(url: str, proc: subprocess.Popen, log: Path, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            pytest.fail(f"{url} did not come up:\n{log.read_text()[-3000:]}")
        time.sleep(0.25)


@pytest.fixture
def site_url(transactional_db, tmp_path):
    """The ASGI site (uvicorn, like production) on 127.0.0.1:<free port>, on the test database.

    Yields its base URL, e.g. http://127.0.0.1:43121.
    """
    from django.conf import settings

    port = free_port()
    env = {
        **os.environ,
        "DATABASE_URL": database_url_for_tests(),
        "ASKHANDLE_REDIS_PREFIX": settings.REDIS_PREFIX,
        "ASKHANDLE_MODEL_CACHE": str(settings.LOCAL_MODEL_CACHE),
        "DJANGO_DEBUG": "1",  # static files straight from static/ (WhiteNoise finders)
        "PYTHONUNBUFFERED": "1",
    }
    env.pop("PYTEST_VERSION", None)
    env.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
    log = tmp_path / "uvicorn.log"
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
        ],
        cwd=ROOT,
        env=env,
        stdout=log.open("w"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    base = f"http://127.0.0.1:{port}"
    wait_for(base + "/healthz", proc, log)
    yield base
    print(f"--- uvicorn log (shown when the test fails) ---\n{log.read_text()[-4000:]}")
    proc.terminate()
    try:
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        proc.kill()


@pytest.fixture
def customer_site(site_url):
    """A business's own site on another local port, embedding the widget with the snippet."""
    page = (
        "<!doctype html><html><head><meta charset='utf-8'><title>Acme Outdoor</title>"
        "<style>body{font-family:sans-serif;margin:0;background:#f4f1ea}header{background:#234;"
        "color:#fff;padding:18px 32px;font-size:22px}main{padding:32px;max-width:720px}</style>"
        "</head><body><header>Acme Outdoor</header><main><h1>Tents for every season</h1>"
        "<p>Free shipping on orders over $50. Questions? Use the chat bubble.</p></main>"
        f'<script src="{site_url}/widget.js" data-bot="acme" async></script></body></html>'
    ).encode()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 (http.server's naming)
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(page)))
            self.end_headers()
            self.wfile.write(page)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


@pytest.fixture
def browser():
    if not Path(CHROMIUM).exists() or shutil.which(CHROMIUM) is None:
        pytest.fail(f"{CHROMIUM} is missing: run `make system-deps` (apt-get install chromium).")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()
        # While Playwright's loop runs, Django keys connections by that context: the test's ORM
        # calls got their own connection, which only this context can close (else the test
        # database cannot be dropped: "being accessed by other users").
        from django.db import connections

        connections.close_all()


@pytest.fixture
def screenshot():
    """screenshot(page, "name") saves /tmp/screens/name.png (full page)."""
    SCREENS.mkdir(parents=True, exist_ok=True)

    def take(page, name: str) -> Path:
        path = SCREENS / f"{name}.png"
        page.screenshot(path=str(path), full_page=True)
        return path

    return take
