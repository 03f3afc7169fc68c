"""Which address a request came from, behind the reverse proxies the operator trusts.

This is the one place the hub decides it: allauth's per-IP login limits (``hub.adapters``), the
API throttle's identity for requests without a key (``hub.api_auth``) and the audit log's ``ip``
(``hub.audit``) all ask :func:`client_ip`. Gunicorn never rewrites ``REMOTE_ADDR`` (its
``--forwarded-allow-ips`` only decides whom it believes about the scheme), and neither DRF's
``NUM_PROXIES`` nor allauth's ``TRUSTED_PROXY_COUNT`` is set: proxies are trusted here, by
address, through ``HASHHUB_TRUSTED_PROXIES``.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from functools import lru_cache
from typing import TYPE_CHECKING

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

if TYPE_CHECKING:
    from django.http import HttpRequest

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

SETTING = "HASHHUB_TRUSTED_PROXIES"


def trusted_proxy_networks(entries: Iterable[str]) -> list[str]:
    """The entries of ``HASHHUB_TRUSTED_PROXIES`` as canonical networks (``10.0.0.0/8``).

    A bare address is a network of one. A malformed entry, or one with host bits set
    (``10.0.0.1/8``, which may have meant either the address or the network), raises
    ImproperlyConfigured naming the setting and the entry, so a hub never starts trusting
    something other than what its operator meant.
    """
    return [str(network) for network in _parse(tuple(entries))]


def client_ip(request: HttpRequest) -> str | None:
    """The address of the client that sent ``request``, or None when the peer has none.

    When the peer (``REMOTE_ADDR``) is a trusted proxy, ``X-Forwarded-For`` is read from the
    right, the end the proxies append to, past every trusted hop; the first untrusted address
    is the client (the "rightmost untrusted" rule). Anything to its left was written by the
    client and is ignored. A value that is not an IP address stops the walk at the hop that
    passed it on (the peer itself when it is the rightmost), never an error; when every hop is
    trusted, the furthest one is the client. An untrusted peer's header is never read.
    """
    client = _address(request.META.get("REMOTE_ADDR") or "")
    if client is None:
        return None
    networks = _networks(_raw_setting())
    forwarded = request.META.get("HTTP_X_FORWARDED_FOR") or ""
    if networks and forwarded:
        for text in reversed(forwarded.split(",")):
            if not _trusted(client, networks):
                break
            hop = _address(text)
            if hop is None:
                break
            client = hop
    return str(client)


def _raw_setting() -> tuple[str, ...]:
    raw = getattr(settings, SETTING, ())
    if isinstance(raw, str):
        raw = raw.split(",")
    return tuple(item.strip() for item in raw if item.strip())


@lru_cache(maxsize=8)
def _networks(raw: tuple[str, ...]) -> tuple[IPNetwork, ...]:
    # Settings parse the variable at start-up; this cache (by the raw value) lets a test's
    # override_settings take effect without parsing on every request.
    return _parse(raw)


def _parse(entries: tuple[str, ...]) -> tuple[IPNetwork, ...]:
    networks = []
    for entry in entries:
        text = entry.strip()
        if not text:
            continue
        try:
            networks.append(ipaddress.ip_network(text))
        except ValueError as error:
            raise ImproperlyConfigured(
                f"{SETTING} must list IP addresses or networks (e.g. 127.0.0.1/32,10.0.0.0/8); "
                f"{text!r} is not one: {error}."
            ) from None
    return tuple(networks)


def _address(text: str) -> IPAddress | None:
    """``text`` as an address, or None when it is not one (one with a port or brackets is not)."""
    try:
        address = ipaddress.ip_address(text.strip())
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address):
        # A dual-stack socket reports IPv4 peers as ::ffff:a.b.c.d; one client, one address.
        if address.ipv4_mapped is not None:
            return address.ipv4_mapped
        # A zone (fe80::1%eth0) names an interface of some hop, not the client, and PostgreSQL's
        # inet type refuses it.
        if address.scope_id:
            return ipaddress.IPv6Address(int(address))
    return address


def _trusted(address: IPAddress, networks: tuple[IPNetwork, ...]) -> bool:
    return any(address in network for network in networks)
