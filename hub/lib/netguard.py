"""The address guard: which addresses the hub's servers may connect to for a URL someone chose.

A URL that a member (a webhook) or staff (an upstream source, a peer hub) chooses and the hub's
servers then fetch or post to is an SSRF vector: it could name the cloud's metadata service, the
database, or anything else only the servers can reach. This module says whether a host may be
reached; the callers (matching.webhooks, lists.sources.guard and the source HTTP client) parse
their URLs, say what is allowed (:class:`Allowance`), and connect to an address this module
checked, so that a DNS answer that changes between the check and the connection cannot redirect
the request inside.

Refused: every address that is not public (unspecified, loopback, link-local, multicast, shared
carrier-grade NAT, private, reserved, anything not global), also when wrapped in an IPv6 address
(mapped, 6to4, NAT64), unless the allowance lets it through. Cloud metadata names and addresses
are refused always, even inside an allowed network or under an allowed name.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Iterable
from dataclasses import dataclass, field

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

# Cloud instance metadata services: refused even inside an allowed network, because an allowed
# private range (say 169.254.0.0/16 for a sidecar) must never open the cloud credentials too.
METADATA_HOSTS = frozenset({"metadata.google.internal", "metadata.goog", "metadata"})
METADATA_ADDRESSES: frozenset[IPAddress] = frozenset(
    {
        ipaddress.ip_address("169.254.169.254"),  # AWS, GCP, Azure, OpenStack, ...
        ipaddress.ip_address("fd00:ec2::254"),  # AWS over IPv6
        ipaddress.ip_address("100.100.100.200"),  # Alibaba Cloud
        ipaddress.ip_address("169.254.170.2"),  # AWS ECS task credentials
    }
)
SHARED_NETWORK = ipaddress.ip_network("100.64.0.0/10")  # carrier-grade NAT (RFC 6598)
NAT64_NETWORK = ipaddress.ip_network("64:ff9b::/96")


class AddressRefusedError(Exception):
    """The guard will not connect: ``code`` is ``invalid_host``, ``not_allowed`` or
    ``unresolvable``; ``host`` is the host as it may be shown (with the refused address when it
    was a name); ``detail`` a phrase saying why ("it is a loopback address")."""

    def __init__(self, code: str, host: str, detail: str) -> None:
        super().__init__(f"{host}: {detail}")
        self.code = code
        self.host = host
        self.detail = detail


@dataclass(frozen=True)
class Allowance:
    """What the guard lets through besides public addresses: networks, and host names whose
    every address passes (a name is trusted as the operator's own, except for metadata)."""

    networks: tuple[IPNetwork, ...] = ()
    hosts: frozenset[str] = field(default_factory=frozenset)

    @classmethod
    def from_entries(cls, entries: Iterable[str]) -> Allowance:
        """From a setting's items: each a network in CIDR form, an address, or a host name."""
        networks: list[IPNetwork] = []
        hosts: set[str] = set()
        for entry in entries:
            text = str(entry).strip()
            if not text:
                continue
            try:
                networks.append(ipaddress.ip_network(text.strip("[]"), strict=False))
            except ValueError:
                hosts.add(host_name(text))
        return cls(tuple(networks), frozenset(hosts))

    def names(self, host: str) -> bool:
        """Whether ``host`` itself is allowed: a listed name, or an address in a listed network.

        Says nothing of what a name resolves to, on purpose: callers use it to decide whether a
        host may be trusted with more (credentials over plain http), and a name's answer can
        change after the decision.
        """
        name = host_name(host)
        if name in self.hosts:
            return True
        try:
            address = ipaddress.ip_address(name)
        except ValueError:
            return False
        return any(address in network for network in self.networks)


def host_name(raw: str) -> str:
    """A URL's host as the guard compares it: lower case, IDNA-encoded, no trailing dot or
    brackets. Raises AddressRefusedError ``invalid_host`` when it cannot be one."""
    text = raw.strip().strip("[]").rstrip(".")
    try:
        return text.encode("idna").decode("ascii").lower()
    except UnicodeError:
        raise AddressRefusedError("invalid_host", raw, "it is not a valid host name") from None


def embedded_ipv4(address: IPAddress) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 address carries (mapped, 6to4, NAT64), which is what is reached."""
    if isinstance(address, ipaddress.IPv4Address):
        return None
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address.sixtofour is not None:
        return address.sixtofour
    if address in NAT64_NETWORK:
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return None


def address_refusal(
    address: IPAddress, networks: Iterable[IPNetwork], *, any_address: bool = False
) -> str | None:
    """Why the hub will not connect to ``address`` (a phrase), or None when it may.

    ``networks`` are let through; ``any_address`` lets everything through but metadata (for a
    host name the allowance lists).
    """
    embedded = embedded_ipv4(address)
    if address in METADATA_ADDRESSES or (embedded is not None and embedded in METADATA_ADDRESSES):
        return "a cloud metadata address"
    allowed = list(networks)
    if any_address or any(address in network for network in allowed):
        return None
    if embedded is not None:
        reason = address_refusal(embedded, allowed)
        return f"{reason} (inside an IPv6 address)" if reason else None
    checks = (
        (address.is_unspecified, "an unspecified address"),
        (address.is_loopback, "a loopback address"),
        (address.is_link_local, "a link-local address"),
        (address.is_multicast, "a multicast address"),
        (address in SHARED_NETWORK, "a shared (carrier-grade NAT) address"),
        (address.is_private, "a private address"),
        (address.is_reserved, "a reserved address"),
        (not address.is_global, "not a public address"),
    )
    return next((reason for refused, reason in checks if refused), None)


def resolve(host: str, port: int) -> list[IPAddress]:
    """The distinct addresses ``host`` resolves to, in the resolver's order.

    Raises AddressRefusedError ``unresolvable`` when it has none.
    """
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError):
        raise AddressRefusedError(
            "unresolvable", host, "the host name could not be resolved"
        ) from None
    addresses: list[IPAddress] = []
    for info in infos:
        # The scope id of a link-local IPv6 answer ("fe80::1%eth0") is not part of the address.
        address = ipaddress.ip_address(str(info[4][0]).split("%", 1)[0])
        if address not in addresses:
            addresses.append(address)
    if not addresses:
        raise AddressRefusedError("unresolvable", host, "the host name has no address")
    return addresses


def checked_addresses(host: str, port: int, allowance: Allowance) -> list[IPAddress]:
    """Resolve ``host`` and check every address; the first one is where to connect.

    Every address must pass, since a client may connect to any of them. Raises
    AddressRefusedError ``not_allowed`` (a metadata name, or an address the guard refuses),
    ``unresolvable`` or ``invalid_host``.
    """
    name = host_name(host)
    if name in METADATA_HOSTS:
        raise AddressRefusedError("not_allowed", name, "it is a cloud metadata service")
    addresses = resolve(name, port)
    trusted = name in allowance.hosts
    for address in addresses:
        reason = address_refusal(address, allowance.networks, any_address=trusted)
        if reason is not None:
            shown = name if name == str(address) else f"{name} ({address})"
            raise AddressRefusedError("not_allowed", shown, f"it is {reason}")
    return addresses
