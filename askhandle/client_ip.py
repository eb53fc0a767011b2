"""The client's address for per-IP limits (chat.ratelimit), whatever proxies stand in front.

A forwarded header (settings.CLIENT_IP_HEADER, X-Forwarded-For by default) is anyone's to send:
it is read only on a request whose peer (REMOTE_ADDR) is one of settings.TRUSTED_PROXIES
(ASKHANDLE_TRUSTED_PROXIES: addresses or CIDR ranges). Then the client is the right-most
address in it that is not itself a trusted proxy: each proxy appends the peer it saw, so what
lies left of that was written by the client and proves nothing. With no trusted proxies (the
default) the header is ignored and the peer is the client.
"""

from __future__ import annotations

import ipaddress
import logging
from functools import cache

from django.conf import settings

log = logging.getLogger(__name__)

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


@cache
def _networks(spec: tuple[str, ...]) -> tuple[Network, ...]:
    networks = []
    for item in spec:
        try:
            networks.append(ipaddress.ip_network(item, strict=False))
        except ValueError:
            log.error(
                "ASKHANDLE_TRUSTED_PROXIES: %r is not an address or CIDR range; ignored.", item
            )
    return tuple(networks)


def _trusted(address: str, networks: tuple[Network, ...]) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    if ip.version == 6 and ip.ipv4_mapped:  # ::ffff:10.0.0.1 from a dual-stack socket
        ip = ip.ipv4_mapped
    return any(ip in network for network in networks)


def client_ip(request) -> str:
    peer = request.META.get("REMOTE_ADDR", "") or "unknown"
    networks = _networks(tuple(settings.TRUSTED_PROXIES))
    if not networks or not _trusted(peer, networks):
        return peer
    header = settings.CLIENT_IP_HEADER or "HTTP_X_FORWARDED_FOR"
    hops = [hop.strip() for hop in request.META.get(header, "").split(",") if hop.strip()]
    for hop in reversed(hops):
        if not _trusted(hop, networks):
            return hop
    return hops[0] if hops else peer  # every hop a proxy of ours: the first one asked
