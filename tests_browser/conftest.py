"""Browser-test fixtures beyond the root conftest's (asgi_server, browser, screenshot): a
customer's own site that embeds the widget; training's auto_tuning and cleanup for the
retrieval-tuning card."""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from training.tests.support import auto_tuning, cleanup  # noqa: F401 (fixtures)


@pytest.fixture
def customer_site(asgi_server):
    """A business's own site on another local port, embedding the widget with the snippet."""
    page = (
        "<!doctype html><html><head><meta charset='utf-8'><title>Acme Outdoor</title>"
        "<style>body{font-family:sans-serif;margin:0;background:#f4f1ea}header{background:#234;"
        "color:#fff;padding:18px 32px;font-size:22px}main{padding:32px;max-width:720px}</style>"
        "</head><body><header>Acme Outdoor</header><main><h1>Tents for every season</h1>"
        "<p>Free shipping on orders over $50. Questions? Use the chat bubble.</p></main>"
        f'<script src="{asgi_server}/widget.js" data-bot="acme" async></script></body></html>'
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

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()
