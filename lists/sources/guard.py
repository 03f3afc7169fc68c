"""Where an upstream source may be fetched from, and where its credentials may be sent.

Source and peer-hub URLs are chosen by staff and fetched by the hub's workers, so they pass the
same address guard as webhooks (hub.lib.netguard): loopback, private, link-local, metadata and
other non-public addresses are refused unless ``settings.HASHHUB_SOURCE_ALLOWED_HOSTS`` names the
host or a network holding its addresses. The guard runs twice: when a URL is saved (a host that
resolves to a refused address is refused; a name that does not resolve yet is let through) and
when the worker connects (lists.sources.adapters.http), where the address actually connected to
is the one checked.

Credentials go only over https, or over plain http to a host the allow-list names itself (a
listed name, or an address literal inside a listed network: never a name merely resolving into
one, since the answer may change).
"""

from __future__ import annotations

from urllib.parse import urlsplit

from django.conf import settings

from hub.lib import netguard
from lists.sources.errors import SourceError


def allowance() -> netguard.Allowance:
    """What the guard lets through for sources: HASHHUB_SOURCE_ALLOWED_HOSTS."""
    return netguard.Allowance.from_entries(settings.HASHHUB_SOURCE_ALLOWED_HOSTS)


def _parts(url: str) -> tuple[str, str, int]:
    """(scheme, host, port) of a source URL; SourceError ``bad_config`` when it has none."""
    try:
        parts = urlsplit(str(url).strip())
        port = parts.port
    except ValueError:
        raise SourceError("bad_config", "The source's url is not a valid URL.") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise SourceError("bad_config", "The source's url must be an http:// or https:// URL.")
    return parts.scheme, parts.hostname, port or (443 if parts.scheme == "https" else 80)


def refused_address(host: str, detail: str) -> SourceError:
    return SourceError(
        "address_not_allowed",
        f"HashHub will not fetch sources from {host}: {detail}. Use a public address, or ask "
        "the hub operator to list the host in HASHHUB_SOURCE_ALLOWED_HOSTS.",
    )


def insecure_credentials(host: str) -> SourceError:
    return SourceError(
        "insecure_credentials",
        f"Credentials are sent only over https://; {host} is reached over plain http:// and "
        "is not listed in HASHHUB_SOURCE_ALLOWED_HOSTS. Use an https:// URL.",
    )


def credentials_check(url: str) -> None:
    """Refuse to send a credential to ``url`` unless it is https, or plain http to a host the
    allow-list names (SourceError ``insecure_credentials``)."""
    scheme, host, _ = _parts(url)
    if scheme != "https" and not allowance().names(host):
        raise insecure_credentials(host)


def source_url_check(url: str, *, with_credentials: bool) -> None:
    """Refuse a source URL the hub must not fetch, or send credentials to (save time).

    Resolves the host: a name that resolves to a refused address is refused
    (``address_not_allowed``); one that does not resolve now passes, and is checked again at
    every connection. ``with_credentials``: the source sends a credential (from the environment
    or stored), refused over plain http unless the allow-list names the host
    (``insecure_credentials``). Raises SourceError; no other effect.
    """
    _, host, port = _parts(url)
    try:
        netguard.checked_addresses(host, port, allowance())
    except netguard.AddressRefusedError as refused:
        if refused.code == "invalid_host":
            raise SourceError("bad_config", "The source's url has no valid host name.") from None
        if refused.code != "unresolvable":
            raise refused_address(refused.host, refused.detail) from None
    if with_credentials:
        credentials_check(url)
