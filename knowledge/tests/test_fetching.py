"""Web-page sources: SSRF refusals without connecting, manual redirects, limits, happy path."""

import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from knowledge import fetching, services
from knowledge.models import Chunk, FaqEntry, Source

PAGE = b"""<!doctype html><html><head><title>Brightside FAQ</title><script>var x = 1;</script></head>
<body><nav>Home | Shop</nav><main><h1>Delivery</h1><p>We deliver within 2 working days in the city.</p>
<h2>Do you deliver on Saturdays?</h2><p>Yes, between 9:00 and 13:00.</p></main><footer>(c) Brightside</footer></body></html>"""


class Server:
    """A local HTTP server; `routes` maps a path to (status, headers, body or callable)."""

    def __init__(self, host="127.0.0.1", routes=None):
        self.hits: list[str] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                server.hits.append(self.path)
                status, headers, body = server.routes.get(self.path, (404, {}, b"missing"))
                if callable(body):
                    body = body()
                self.send_response(status)
                for key, value in headers.items():
                    self.send_header(key, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                try:
                    self.wfile.write(body)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client hung up on purpose (size limit)

        self.routes = routes or {}
        self.httpd = ThreadingHTTPServer((host, 0), Handler)
        self.url = f"http://{host}:{self.httpd.server_address[1]}"

    def __enter__(self):
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1/",
        "http://localhost:8000/admin",
        "http://10.1.2.3/",
        "http://192.168.0.1/",
        "http://169.254.169.254/latest/meta-data/",
        "http://[::1]/",
        "http://[::ffff:127.0.0.1]/",
        "http://0.0.0.0/",
        "http://2130706433/",
        "http://[fe80::1]/",
    ],
)
def test_default_refuses_private_loopback_and_link_local(url):
    with pytest.raises(fetching.FetchError, match="private or local network address"):
        fetching.check_url(url)


@pytest.mark.parametrize(
    "url, inner",
    [
        ("http://[2002:7f00:1::1]/", "127.0.0.1"),  # 6to4
        ("http://[2002:a9fe:a9fe::1]/latest/meta-data/", "169.254.169.254"),  # 6to4, metadata
        ("http://[2002:c0a8:1::1]:8080/", "192.168.0.1"),  # 6to4
        ("http://[64:ff9b::7f00:1]/", "127.0.0.1"),  # NAT64 well-known prefix
        ("http://[64:ff9b::a00:1]/", "10.0.0.1"),  # NAT64
        ("http://[64:ff9b::169.254.169.254]/", "169.254.169.254"),  # NAT64, dotted
        ("http://[::ffff:10.0.0.1]/", "10.0.0.1"),  # IPv4-mapped
        ("http://[::127.0.0.1]/", "127.0.0.1"),  # IPv4-compatible
        ("http://[::ffff:0:7f00:1]/", "127.0.0.1"),  # IPv4-translated (SIIT)
        ("http://[2001:0:4136:e378:8000:63bf:80ff:fffe]/", "127.0.0.1"),  # Teredo client
    ],
)
def test_ipv6_addresses_carrying_a_private_ipv4_are_refused(url, inner):
    with pytest.raises(fetching.FetchError, match="private or local network address") as caught:
        fetching.check_url(url)
    assert inner in caught.value.messages[0].partition("which carries ")[2]


def test_local_use_nat64_prefix_is_refused():
    with pytest.raises(fetching.FetchError, match="private or local network address"):
        fetching.check_url("http://[64:ff9b:1::808:808]/")


def test_6to4_address_carrying_a_public_ipv4_is_allowed():
    assert fetching.check_url("http://[2002:808:808::1]/") == (
        "2002:808:808::1",
        80,
        "2002:808:808::1",
    )


def test_embedded_private_ipv4_follows_the_allowed_networks(settings):
    settings.KNOWLEDGE_URL_ALLOWED_NETWORKS = ["127.0.0.1/32"]
    assert fetching.check_url("http://[2002:7f00:1::1]/")[2] == "2002:7f00:1::1"
    with pytest.raises(fetching.FetchError, match="carries 127.0.0.2"):
        fetching.check_url("http://[2002:7f00:2::1]/")


def test_redirect_to_a_6to4_loopback_is_refused_without_connecting(settings):
    settings.KNOWLEDGE_URL_ALLOWED_NETWORKS = ["127.0.0.1/32"]  # only the first hop is allowed
    location = "http://[2002:7f00:2::1]/"  # 127.0.0.2
    with Server(routes={"/go": (302, {"Location": location}, b"")}) as outer:
        with pytest.raises(fetching.FetchError, match="carries 127.0.0.2"):
            fetching.fetch(outer.url + "/go")
    assert outer.hits == ["/go"]


@pytest.mark.parametrize(
    "url", ["ftp://example.com/x", "file:///etc/passwd", "http://user:pw@example.com/", "http://"]
)
def test_refuses_other_schemes_and_credentials(url):
    with pytest.raises(fetching.FetchError):
        fetching.check_url(url)


def test_refused_without_connecting():
    with Server(routes={"/": (200, {"Content-Type": "text/html"}, PAGE)}) as server:
        with pytest.raises(fetching.FetchError, match="private or local"):
            fetching.fetch(server.url + "/")
    assert server.hits == []


@pytest.mark.parametrize(
    "target",
    [
        "http://127.0.0.2:{port}/",
        "http://10.0.0.1/",
        "http://169.254.169.254/",
        "http://[::1]:{port}/",
    ],
)
def test_redirect_to_private_address_is_refused_without_connecting(settings, target):
    settings.KNOWLEDGE_URL_ALLOWED_NETWORKS = ["127.0.0.1/32"]  # only the first hop is allowed
    with Server(host="127.0.0.2") as inner:
        port = inner.httpd.server_address[1]
        location = target.format(port=port)
        with Server(routes={"/go": (302, {"Location": location}, b"")}) as outer:
            with pytest.raises(fetching.FetchError, match="private or local"):
                fetching.fetch(outer.url + "/go")
        assert outer.hits == ["/go"]
    assert inner.hits == []


def test_follows_redirects_and_reads_a_page(settings):
    settings.KNOWLEDGE_URL_ALLOW_PRIVATE = True
    routes = {
        "/old": (301, {"Location": "/faq"}, b""),
        "/faq": (200, {"Content-Type": "text/html; charset=utf-8"}, PAGE),
    }
    with Server(routes=routes) as server:
        page = fetching.fetch(server.url + "/old")
    assert (
        page.url == server.url + "/faq"
        and page.content_type == "text/html"
        and b"Saturdays" in page.body
    )


def test_too_many_redirects(settings):
    settings.KNOWLEDGE_URL_ALLOW_PRIVATE = True
    with Server(routes={"/loop": (302, {"Location": "/loop"}, b"")}) as server:
        with pytest.raises(fetching.FetchError, match="redirected more than"):
            fetching.fetch(server.url + "/loop")
    assert len(server.hits) == fetching.MAX_REDIRECTS + 1


def test_size_time_and_type_limits(settings):
    settings.KNOWLEDGE_URL_ALLOW_PRIVATE = True
    settings.KNOWLEDGE_URL_MAX_BYTES = 1000
    settings.KNOWLEDGE_URL_TIMEOUT = 1

    def slow():
        time.sleep(2)
        return PAGE

    routes = {
        "/big": (200, {"Content-Type": "text/html"}, b"<p>" + b"x" * 5000 + b"</p>"),
        "/slow": (200, {"Content-Type": "text/html"}, slow),
        "/img": (200, {"Content-Type": "image/png"}, b"\x89PNG"),
        "/gone": (404, {"Content-Type": "text/html"}, b"nope"),
    }
    with Server(routes=routes) as server:
        with pytest.raises(fetching.FetchError, match="larger than"):
            fetching.fetch(server.url + "/big")
        with pytest.raises(fetching.FetchError, match="too long"):
            fetching.fetch(server.url + "/slow")
        with pytest.raises(fetching.FetchError, match="image/png"):
            fetching.fetch(server.url + "/img")
        with pytest.raises(fetching.FetchError, match="404"):
            fetching.fetch(server.url + "/gone")


@pytest.mark.django_db(transaction=True)
def test_web_page_source_is_ingested(bot, settings):
    settings.KNOWLEDGE_URL_ALLOW_PRIVATE = True
    with Server(routes={"/faq": (200, {"Content-Type": "text/html"}, PAGE)}) as server:
        source = services.source_add(bot=bot, url=server.url + "/faq", enqueue=False)
        source = services.source_ingest(source_id=source.pk)
    assert source.kind == Source.Kind.URL and source.status == Source.Status.READY, source.error
    assert FaqEntry.objects.get(source=source).answer == "Yes, between 9:00 and 13:00."
    doc = Chunk.objects.get(source=source, faq__isnull=True)
    assert doc.title == "Delivery" and "2 working days" in doc.text
    assert "Home | Shop" not in doc.text and "var x" not in doc.text


@pytest.mark.django_db(transaction=True)
def test_web_page_that_turns_private_at_ingest_fails_clearly(bot, settings):
    settings.KNOWLEDGE_URL_ALLOW_PRIVATE = True
    with Server(routes={"/faq": (200, {"Content-Type": "text/html"}, PAGE)}) as server:
        source = services.source_add(bot=bot, url=server.url + "/faq", enqueue=False)
        settings.KNOWLEDGE_URL_ALLOW_PRIVATE = False  # e.g. DNS now answers with a private address
        source = services.source_ingest(source_id=source.pk)
    assert (
        source.status == Source.Status.FAILED and "private or local network address" in source.error
    )
    assert server.hits == []
