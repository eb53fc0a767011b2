"""The one module that fetches URLs (web-page sources).

Server-side request forgery is refused without connecting: the host is resolved first, EVERY
address it resolves to must be public, and the connection then goes to the checked address (so a
second DNS answer cannot swap in 127.0.0.1). Redirects are followed by hand and each hop is
checked the same way. Size and time are limited.

settings.KNOWLEDGE_URL_ALLOW_PRIVATE / KNOWLEDGE_URL_ALLOWED_NETWORKS open private ranges (tests
fetch from a local server; intranet installs).
"""

from __future__ import annotations

import ipaddress
import socket
import time
from dataclasses import dataclass
from urllib.parse import urljoin, urlsplit, urlunsplit

import httpx
from django.conf import settings
from django.core.exceptions import ValidationError
from django.utils.translation import gettext as _

MAX_REDIRECTS = 5
USER_AGENT = "AskHandleBot/1.0 (+knowledge import)"
ACCEPTED_TYPES = (
    "text/html",
    "application/xhtml+xml",
    "text/plain",
    "text/markdown",
    "application/pdf",
)


class FetchError(ValidationError):
    """The URL cannot or must not be fetched; the message is shown to the owner."""


@dataclass
class Fetched:
    url: str  # final URL after redirects
    content_type: str
    body: bytes


# Translation and tunnelling schemes carry an IPv4 address inside the IPv6 one, and a relay or
# the host's own stack may deliver to it: [2002:7f00:1::1] (6to4) is 127.0.0.1. The IPv6 address
# alone looks global, so the embedded IPv4 address is checked as well.
NAT64_WELL_KNOWN = ipaddress.ip_network("64:ff9b::/96")  # RFC 6052: the last 32 bits
NAT64_LOCAL_USE = ipaddress.ip_network("64:ff9b:1::/48")  # RFC 8215: a private prefix
IPV4_COMPATIBLE = ipaddress.ip_network("::/96")  # deprecated ::a.b.c.d
IPV4_TRANSLATED = ipaddress.ip_network("::ffff:0:0:0/96")  # SIIT, RFC 2765


def embedded_ipv4(ip: ipaddress.IPv6Address) -> list[ipaddress.IPv4Address]:
    """IPv4 addresses an IPv6 address carries: mapped, compatible, 6to4, Teredo, NAT64."""
    found = []
    if ip.ipv4_mapped:
        found.append(ip.ipv4_mapped)
    if ip.sixtofour:
        found.append(ip.sixtofour)
    if ip.teredo:
        found.extend(ip.teredo)  # (server, client); the client is de-obfuscated already
    if (
        ip in NAT64_WELL_KNOWN
        or ip in IPV4_TRANSLATED
        or (ip in IPV4_COMPATIBLE and int(ip) > 1)  # not :: or ::1
    ):
        found.append(ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF))
    return found


def _allowed(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped:
        ip = ip.ipv4_mapped
    for network in settings.KNOWLEDGE_URL_ALLOWED_NETWORKS:
        if ip in ipaddress.ip_network(network, strict=False):
            return True
    if isinstance(ip, ipaddress.IPv6Address):
        if not all(_allowed(inner) for inner in embedded_ipv4(ip)):
            return False
        if ip in NAT64_LOCAL_USE and not settings.KNOWLEDGE_URL_ALLOW_PRIVATE:
            return False
    if ip.is_multicast or ip.is_unspecified or ip.is_reserved:
        return False
    if settings.KNOWLEDGE_URL_ALLOW_PRIVATE:
        return True
    return ip.is_global and not (ip.is_loopback or ip.is_link_local or ip.is_private)


def _describe(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> str:
    inner = embedded_ipv4(ip) if isinstance(ip, ipaddress.IPv6Address) else []
    if not inner:
        return str(ip)
    return _("%(ip)s, which carries %(inner)s") % {"ip": ip, "inner": ", ".join(map(str, inner))}


def check_url(url: str) -> tuple[str, int, str]:
    """Validate scheme and host, resolve, and check every address. Returns (host, port, ip) to
    connect to; raises FetchError. Makes no connection."""
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError as exc:
        raise FetchError(_("That is not a valid web address.")) from exc
    if parts.scheme not in ("http", "https"):
        raise FetchError(_("Only http:// and https:// addresses can be imported."))
    host = parts.hostname
    if not host:
        raise FetchError(_("That web address has no host name."))
    if parts.username or parts.password:
        raise FetchError(_("Web addresses with a user name or password are not allowed."))
    port = port or (443 if parts.scheme == "https" else 80)
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise FetchError(_("The host %(host)r could not be found.") % {"host": host}) from exc
    addresses = []
    for info in infos:
        ip = ipaddress.ip_address(info[4][0].split("%", 1)[0])
        if not _allowed(ip):
            raise FetchError(
                _(
                    "%(host)s points to a private or local network address (%(address)s); only "
                    "public web pages can be imported."
                )
                % {"host": host, "address": _describe(ip)}
            )
        addresses.append(str(ip))
    if not addresses:
        raise FetchError(_("The host %(host)r could not be found.") % {"host": host})
    return host, port, addresses[0]


def fetch(url: str) -> Fetched:
    """GET a public web page with manual, re-checked redirects and size/time limits."""
    deadline = time.monotonic() + settings.KNOWLEDGE_URL_TIMEOUT
    # trust_env=False: no proxy from the environment may bypass the address check.
    with httpx.Client(trust_env=False, follow_redirects=False, verify=True) as client:
        for _hop in range(MAX_REDIRECTS + 1):
            response = _send_checked(client, url, deadline)
            try:
                if response.is_redirect:
                    location = response.headers.get("location", "")
                    if not location:
                        raise FetchError(_("The web page redirected without saying where."))
                    url = urljoin(url, location)
                    continue
                return _read_page(response, url, deadline)
            finally:
                response.close()
    raise FetchError(_("The web page redirected more than %(n)s times.") % {"n": MAX_REDIRECTS})


def _send_checked(client: httpx.Client, url: str, deadline: float) -> httpx.Response:
    """One GET to the address check_url approved (not a fresh DNS answer), streamed."""
    host, port, ip = check_url(url)
    parts = urlsplit(url)
    netloc_ip = f"[{ip}]" if ":" in ip else ip
    target = urlunsplit((parts.scheme, f"{netloc_ip}:{port}", parts.path or "/", parts.query, ""))
    default_port = port == (443 if parts.scheme == "https" else 80)
    headers = {
        "Host": host if default_port else f"{host}:{port}",
        "User-Agent": USER_AGENT,
        "Accept": "text/html,application/xhtml+xml,text/plain,text/markdown,application/pdf;q=0.9",
    }
    remaining = deadline - time.monotonic()
    if remaining <= 0:
        raise FetchError(_("The web page took too long to answer."))
    request = client.build_request(
        "GET",
        target,
        headers=headers,
        timeout=httpx.Timeout(remaining),
        # TLS is verified against the real host name while connecting to the checked IP.
        extensions={"sni_hostname": host} if parts.scheme == "https" else {},
    )
    try:
        return client.send(request, stream=True)
    except httpx.TimeoutException as exc:
        raise FetchError(_("The web page took too long to answer.")) from exc
    except httpx.HTTPError as exc:
        raise FetchError(
            _("The web page could not be fetched (%(error)s).") % {"error": exc.__class__.__name__}
        ) from exc


def _read_page(response: httpx.Response, url: str, deadline: float) -> Fetched:
    """The body of a final (non-redirect) answer, within the type, size and time limits."""
    limit = settings.KNOWLEDGE_URL_MAX_BYTES
    too_large = _("The web page is larger than %(n)s MB.") % {"n": limit // (1024 * 1024)}
    if response.status_code >= 400:
        raise FetchError(
            _("The web page answered with an error (%(status)s).")
            % {"status": response.status_code}
        )
    content_type = response.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type and content_type not in ACCEPTED_TYPES:
        raise FetchError(
            _("The address serves %(type)s, not a web page, text or PDF document.")
            % {"type": content_type}
        )
    declared = response.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise FetchError(too_large)
    body = bytearray()
    try:
        for part in response.iter_bytes():
            body += part
            if len(body) > limit:
                raise FetchError(too_large)
            if time.monotonic() > deadline:
                raise FetchError(_("The web page took too long to download."))
    except httpx.HTTPError as exc:
        raise FetchError(
            _("The web page download failed (%(error)s).") % {"error": exc.__class__.__name__}
        ) from exc
    if not body.strip():
        raise FetchError(_("The web page is empty."))
    return Fetched(url=url, content_type=content_type, body=bytes(body))
