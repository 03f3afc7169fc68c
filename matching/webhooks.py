"""Webhooks: the endpoints an organisation registers, and signed deliveries of its detections.

An endpoint is a URL plus a secret that HashHub generates. Each event (``detection.created`` when a
match request found something, ``detection.reviewed`` when a detection is confirmed, marked a false
positive or dismissed, ``ping`` when an admin presses "Send test", and a higher app's events such
as ``report.filed``, through :func:`event_notify`) is POSTed as JSON by a
Celery task (``matching.tasks.deliver_webhook``), one attempt at a time; a failed attempt is retried
with backoff, and every attempt is kept as a ``WebhookDelivery`` row the organisation can read.
An attempt is over by ``HASHHUB_WEBHOOK_DEADLINE_SECONDS`` whatever the receiver does (connect,
TLS, send and the whole answer together; a receiver that answers a byte at a time fails with
"deadline exceeded"), and runs on the ``webhooks`` Celery queue, whose worker of its own bounds
how many wait on receivers at once (hub/celery.py, hub/Procfile). "Send test" pings are limited
per organisation (``HASHHUB_WEBHOOK_TEST_RATE``).

The signature scheme (also shown on the webhooks page)::

    X-HashHub-Timestamp: <unix seconds>
    X-HashHub-Signature: v1=<hex HMAC-SHA256(secret, "<timestamp>.<raw body>")>

A receiver recomputes the HMAC over the raw body it received, compares in constant time and
rejects old timestamps; :func:`webhook_signature_verify` is that check.

A webhook URL is chosen by a customer and fetched by our servers, so it is an SSRF vector: the
guard refuses every address that is not public (loopback, private, link-local, shared, metadata,
...), checks again at each delivery, and connects to the very address it checked (a DNS answer
that changes between the check and the connection cannot redirect the request inside). The
address checks themselves are hub.lib.netguard's, shared with upstream sources.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import http.client
import io
import ipaddress
import json
import logging
import math
import re
import secrets
import socket
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast
from urllib.parse import urlsplit

from django.conf import settings
from django.core.cache import cache
from django.core.exceptions import ImproperlyConfigured
from django.db import transaction
from django.db.models import QuerySet
from django.http import Http404
from django.utils import timezone
from django_scopes import scope, scopes_disabled

from hub import retention
from hub.audit import Actor, audit
from hub.celery import app
from hub.errors import ServiceError
from hub.lib import netguard
from hub.lib.ids import new_public_id
from hub.models import Organization
from hub.purge import purge_due
from hub.quotas import quota_check_webhooks, quota_usage_counter
from matching import metrics as match_metrics
from matching import preservation
from matching.models import Detection, WebhookDelivery, WebhookEndpoint

logger = logging.getLogger(__name__)

DELIVER_TASK = "matching.deliver_webhook"
"""The Celery task of one delivery attempt (matching.tasks defines it; queued tasks name it). Sent
by name, so that this module does not import the tasks module, which imports it."""

SECRET_PREFIX = "whsec_"  # noqa: S105 (a marker, not a secret)
SIGNATURE_VERSION = "v1"
USER_AGENT = "HashHub-Webhooks/1.0 (+https://hashhub.invalid/docs/webhooks)"
EVENT_DETECTION = "detection.created"
EVENT_REVIEWED = "detection.reviewed"
EVENT_RETRACTED = "detection.retracted"
EVENT_PING = "ping"
# A higher app's events (reports: ``report.filed``...) carry a section of their own, named by the
# event's first word (:func:`event_notify`); these names are the payload's own and never one.
RESERVED_SECTIONS = frozenset({"id", "event", "created", "organization", "detection", "review"})
DEFAULT_TOLERANCE_SECONDS = 300

# What is kept of an error or a redirect target in the delivery log.
ERROR_MAX_CHARS = 500
# Retries: 30 s, 2 min, 8 min, 32 min, ~2 h, then at most 6 h apart, each with +/-10 % jitter so
# that a receiver coming back after an outage is not hit by every queued event at once.
RETRY_BASE_SECONDS = 30
RETRY_FACTOR = 4
RETRY_CAP_SECONDS = 6 * 3600
# One attempt reads its answer in small pieces and at most this much of it (only the status is
# kept), and sends its request in pieces, so the deadline is checked between them.
READ_CHUNK_BYTES = 1024
RESPONSE_MAX_BYTES = 64 * 1024
SEND_CHUNK_BYTES = 16 * 1024

# --- the SSRF guard ---------------------------------------------------------------------------


@dataclass(frozen=True)
class _Target:
    """A checked URL: where to connect (``address``) and what to tell the server (``host``)."""

    scheme: str
    host: str
    port: int
    path: str
    address: str


def url_allowance() -> netguard.Allowance:
    """What the address guard lets through for a URL an organisation chose (a webhook, or a
    picture HMA's ``?url=`` names: hma.views): HASHHUB_WEBHOOK_ALLOWED_NETWORKS."""
    # Networks only (CIDR): the host name is the customer's, never trusted by name.
    return netguard.Allowance(
        networks=tuple(
            ipaddress.ip_network(network, strict=False)
            for network in settings.HASHHUB_WEBHOOK_ALLOWED_NETWORKS
        )
    )


def _not_allowed(url_host: str, detail: str) -> ServiceError:
    return ServiceError(
        "webhook_url_not_allowed",
        f"HashHub will not send webhooks to {url_host}: {detail}. Use a public address"
        " (ask the hub operator to allow a private network if your receiver lives in one).",
        details={"host": url_host},
    )


def _target_for(url: str) -> _Target:
    """Parse, resolve and check ``url``; the first resolved address is the one to connect to.

    Raises ServiceError ``invalid_url``, ``webhook_url_not_allowed`` or (when the name does not
    resolve, which may pass) ``webhook_host_unresolvable``.
    """
    if not isinstance(url, str) or not url or len(url) > 2000:
        raise ServiceError("invalid_url", "Enter a URL of at most 2,000 characters.")
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError:
        raise ServiceError("invalid_url", "This is not a valid URL.") from None
    if parts.scheme not in ("http", "https"):
        raise ServiceError("invalid_url", "A webhook URL must start with https:// or http://.")
    if parts.username is not None or parts.password is not None:
        raise ServiceError(
            "invalid_url",
            "A webhook URL must not contain a user name or password; the signature proves"
            " that a delivery comes from HashHub.",
        )
    raw_host = (parts.hostname or "").rstrip(".")
    if not raw_host:
        raise ServiceError("invalid_url", "A webhook URL needs a host name.")
    port = port or (443 if parts.scheme == "https" else 80)
    try:
        host = netguard.host_name(raw_host)
        addresses = netguard.checked_addresses(host, port, url_allowance())
    except netguard.AddressRefusedError as refused:
        if refused.code == "invalid_host":
            raise ServiceError("invalid_url", f"“{raw_host}” is not a valid host name.") from None
        if refused.code == "unresolvable":
            why = refused.detail.removeprefix("the host name ")
            raise ServiceError(
                "webhook_host_unresolvable", f"The host name {refused.host} {why}."
            ) from None
        raise _not_allowed(refused.host, refused.detail) from None
    path = parts.path or "/"
    if parts.query:
        path = f"{path}?{parts.query}"
    return _Target(parts.scheme, host, port, path, str(addresses[0]))


def webhook_url_check(url: str) -> None:
    """Refuse a URL HashHub must not POST to (SSRF guard). Resolves the host; no other effect.

    http/https only, no credentials; every resolved address must be public (not loopback,
    private, link-local, multicast, reserved, unspecified or shared, also when wrapped in an
    IPv6 address) unless it lies in ``settings.HASHHUB_WEBHOOK_ALLOWED_NETWORKS``; cloud
    metadata names and addresses are refused always. Raises ServiceError ``invalid_url``,
    ``webhook_url_not_allowed`` or ``webhook_host_unresolvable``.
    """
    _target_for(url)


# --- signing ------------------------------------------------------------------------------------


def _secret_new() -> str:
    return SECRET_PREFIX + secrets.token_urlsafe(32)


def webhook_signature(secret: str, timestamp: int, body: bytes) -> str:
    """The ``X-HashHub-Signature`` value: ``v1=`` + hex HMAC-SHA256 of ``"<timestamp>.<body>"``."""
    signed = str(timestamp).encode() + b"." + body
    digest = hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()
    return f"{SIGNATURE_VERSION}={digest}"


def webhook_signature_verify(
    secret: str,
    timestamp: str | int,
    body: bytes | str,
    header: str,
    tolerance: int = DEFAULT_TOLERANCE_SECONDS,
    *,
    now: float | None = None,
) -> bool:
    """How a receiver checks a delivery: the signature matches and the timestamp is recent.

    ``body`` must be the raw request body as received (not re-serialised JSON). ``header`` may
    hold several comma-separated signatures; one valid ``v1`` is enough. Constant-time compare.
    """
    try:
        sent_at = int(timestamp)
    except (TypeError, ValueError):
        return False
    current = time.time() if now is None else now
    if abs(current - sent_at) > tolerance:
        return False
    raw = body.encode() if isinstance(body, str) else body
    expected = webhook_signature(secret, sent_at, raw)
    candidates = [part.strip() for part in (header or "").split(",")]
    return any(hmac.compare_digest(expected, candidate) for candidate in candidates if candidate)


def webhook_payload(
    *,
    event: str,
    event_id: str,
    organization: Organization,
    detection: Detection | None,
    created: datetime,
    review: dict[str, Any] | None = None,
    data: dict[str, Any] | None = None,
) -> bytes:
    """The JSON body of one event; a ``ping`` carries no detection.

    ``detection.matches`` is stored in the API's match shape (an anonymous list's contributor is
    already null there), so it is sent as it is. A ``detection.reviewed`` event also carries
    ``review`` as it was when the review happened: ``outcome``, ``category`` (the list's category
    a confirmation added to, else null) and ``reviewed_at``; never who reviewed.
    """
    payload: dict[str, Any] = {
        "id": event_id,
        "event": event,
        "created": created.isoformat(),
        "organization": organization.slug,
    }
    if detection is not None:
        payload["detection"] = {
            "id": detection.public_id,
            "created": detection.created.isoformat(),
            "content_ref": detection.content_ref,
            "status": detection.status,
            "submitted": detection.submitted,
            "matches": detection.matches,
            "match_count": detection.match_count,
            # Found later, when a kept submission's hash entered a list: ``requested_at`` is
            # the original request's time (matching.retroactive).
            "retroactive": detection.retroactive,
            "requested_at": (
                detection.requested_at.isoformat() if detection.requested_at else None
            ),
        }
        if detection.retracted_at is not None:
            payload["detection"]["retracted_at"] = detection.retracted_at.isoformat()
    if review is not None:
        payload["review"] = review
    if data is not None:
        # A higher app's event (:func:`event_notify`): its data under the event's first word.
        payload[event_section(event)] = data
    return json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode()


def webhook_headers(*, secret: str, event: str, event_id: str, body: bytes) -> dict[str, str]:
    """The headers of one signed delivery (a fresh timestamp each attempt)."""
    timestamp = int(time.time())
    return {
        "Content-Type": "application/json",
        "User-Agent": USER_AGENT,
        "X-HashHub-Event": event,
        "X-HashHub-Delivery": event_id,
        "X-HashHub-Timestamp": str(timestamp),
        "X-HashHub-Signature": webhook_signature(secret, timestamp, body),
    }


# --- selectors ----------------------------------------------------------------------------------


def webhooks_of(*, org: Organization) -> QuerySet[WebhookEndpoint]:
    """The organisation's endpoints that are not deleted, oldest first."""
    return WebhookEndpoint.objects.filter(organization=org, deleted_at__isnull=True)


@quota_usage_counter("webhooks")
def webhooks_quota_usage(org: Organization) -> dict[str, int]:
    """What the organisation's endpoints use of its ``webhooks`` quota (hub.quotas)."""
    return {"webhooks": webhooks_of(org=org).count()}


def get_webhook_for_org(*, org: Organization, public_id: str) -> WebhookEndpoint:
    """One endpoint of ``org``; the same 404 for a missing, deleted or another org's endpoint."""
    endpoint = webhooks_of(org=org).filter(public_id=public_id).first()
    if endpoint is None:
        raise Http404("No such webhook.")
    return endpoint


def deliveries_of(*, endpoint: WebhookEndpoint, limit: int = 100) -> list[WebhookDelivery]:
    """The endpoint's latest delivery attempts, newest first."""
    rows = WebhookDelivery.objects.filter(
        organization_id=endpoint.organization_id, endpoint=endpoint
    ).select_related("detection")
    return list(rows[:limit])


def last_deliveries(*, endpoints: list[WebhookEndpoint]) -> dict[int, WebhookDelivery]:
    """Each endpoint's most recent attempt (endpoint pk -> delivery), for the list page."""
    if not endpoints:
        return {}
    rows = (
        WebhookDelivery.objects.filter(
            organization_id=endpoints[0].organization_id, endpoint__in=endpoints
        )
        .order_by("endpoint_id", "-created", "-id")
        .distinct("endpoint_id")
    )
    return {row.endpoint_id: row for row in rows}


# --- services -----------------------------------------------------------------------------------


def _enqueue(
    *,
    endpoint: WebhookEndpoint,
    detection_id: int | None,
    event: str,
    review: dict[str, Any] | None = None,
    data: dict[str, Any] | None = None,
    occurred_at: str | None = None,
) -> str:
    """Queue the first attempt of one event once the current transaction commits."""
    event_id = new_public_id()
    kwargs: dict[str, Any] = {
        "organization_id": endpoint.organization_id,
        "endpoint_id": endpoint.pk,
        "detection_id": detection_id,
        "event": event,
        "event_id": event_id,
        "attempt": 1,
    }
    if review is not None:
        kwargs["review"] = review
    if data is not None:
        kwargs["data"] = data
        kwargs["occurred_at"] = occurred_at
    send = functools.partial(app.send_task, DELIVER_TASK, kwargs=kwargs)
    # robust: a broker outage after the commit is logged, not raised into the caller's response.
    transaction.on_commit(send, robust=True)
    return event_id


def _audit_endpoint(endpoint: WebhookEndpoint, action: str, actor: Actor, **extra: str) -> None:
    audit(
        actor=actor,
        action=action,
        organization=endpoint.organization,
        target_type="webhook",
        target_id=endpoint.public_id,
        metadata={"url": endpoint.url, **extra},
    )


@transaction.atomic
def webhook_create(
    *, org: Organization, url: str, description: str, actor: Actor
) -> tuple[WebhookEndpoint, str]:
    """Register an endpoint; returns it and its secret (to be shown once). Audited.

    Raises ServiceError ``invalid_url``, ``webhook_url_not_allowed``, ``webhook_host_unresolvable``,
    ``invalid_description`` or ``quota_exceeded`` (hub.quotas).
    """
    url = url.strip()
    description = description.strip()
    if len(description) > 200:
        raise ServiceError("invalid_description", "Keep the description to 200 characters.")
    webhook_url_check(url)
    quota_check_webhooks(org=org)
    secret = _secret_new()
    endpoint = WebhookEndpoint.objects.create(
        organization=org,
        url=url,
        description=description,
        secret=secret,
        created_by=actor.user,
    )
    _audit_endpoint(endpoint, "webhook.created", actor, description=description)
    return endpoint, secret


@transaction.atomic
def webhook_delete(*, endpoint: WebhookEndpoint, actor: Actor) -> None:
    """Stop deliveries to an endpoint (queued retries are skipped); keeps its log. Audited."""
    endpoint.deleted_at = timezone.now()
    endpoint.enabled = False
    endpoint.save(update_fields=["deleted_at", "enabled"])
    _audit_endpoint(endpoint, "webhook.deleted", actor)


@transaction.atomic
def webhook_rotate(*, endpoint: WebhookEndpoint, actor: Actor) -> str:
    """Replace the endpoint's secret at once and return the new one (shown once). Audited.

    Attempts already queued are signed with the new secret when they run.
    """
    secret = _secret_new()
    endpoint.secret = secret
    endpoint.save(update_fields=["secret"])
    _audit_endpoint(endpoint, "webhook.secret_rotated", actor)
    return secret


@dataclass(frozen=True)
class PingRate:
    """How many test pings an organisation may send per period (fixed windows)."""

    count: int
    seconds: int

    def __str__(self) -> str:
        return f"{self.count} per {_period_text(self.seconds)}"


_RATE_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_RATE_PATTERN = re.compile(r"\s*(\d+)\s*/\s*(\d*)\s*([smhd])\s*")


def _period_text(seconds: int) -> str:
    for name, size in (("day", 86400), ("hour", 3600), ("minute", 60)):
        if seconds % size == 0:
            number = seconds // size
            return name if number == 1 else f"{number} {name}s"
    return "second" if seconds == 1 else f"{seconds} seconds"


def _wait_text(seconds: int) -> str:
    if seconds < 60:
        return f"{seconds} seconds"
    minutes = math.ceil(seconds / 60)
    return "a minute" if minutes == 1 else f"{minutes} minutes"


def ping_rate() -> PingRate:
    """``settings.HASHHUB_WEBHOOK_TEST_RATE`` read as ``"<count>/<period>"``, e.g. ``"5/10m"``."""
    text = settings.HASHHUB_WEBHOOK_TEST_RATE
    found = _RATE_PATTERN.fullmatch(text)
    rate = PingRate(int(found[1]), int(found[2] or 1) * _RATE_UNITS[found[3]]) if found else None
    if rate is None or rate.count < 1 or rate.seconds < 1:
        raise ImproperlyConfigured(
            f"HASHHUB_WEBHOOK_TEST_RATE must look like 5/10m (count/period), not {text!r}."
        )
    return rate


def _test_ping_count(*, organization_id: int) -> None:
    """Count one test ping of the organisation in the current window of ``ping_rate()``.

    Raises ServiceError ``rate_limited`` (status 429, ``details.retry_after`` in seconds) when
    the window's pings are used up. The counter is a cache (Redis) key per organisation and
    window: ``incr`` is atomic, so presses racing in two web processes are counted exactly, and
    a window's key simply expires after it.
    """
    rate = ping_rate()
    now = time.time()
    window = int(now // rate.seconds)
    key = f"webhooks:test-pings:{organization_id}:{rate.seconds}:{window}"
    cache.add(key, 0, timeout=rate.seconds + 60)
    if cache.incr(key) <= rate.count:
        return
    retry_after = max(1, math.ceil((window + 1) * rate.seconds - now))
    raise ServiceError(
        "rate_limited",
        f"Test pings are limited to {rate} for each organisation; no ping was sent."
        f" Try again in {_wait_text(retry_after)}.",
        details={"limit": rate.count, "period_seconds": rate.seconds, "retry_after": retry_after},
        status=429,
    )


@transaction.atomic
def webhook_ping(*, endpoint: WebhookEndpoint, actor: Actor) -> str:
    """Queue a ``ping`` event to the endpoint (after commit) and return its event id. Audited.

    Limited per organisation (``HASHHUB_WEBHOOK_TEST_RATE``): over the limit it raises
    ServiceError ``rate_limited`` (429) and queues nothing.
    """
    _test_ping_count(organization_id=endpoint.organization_id)
    event_id = _enqueue(endpoint=endpoint, detection_id=None, event=EVENT_PING)
    _audit_endpoint(endpoint, "webhook.tested", actor, event_id=event_id)
    return event_id


def detection_notify(*, detection: Detection) -> None:
    """Queue a ``detection.created`` delivery to each live endpoint of the detection's org.

    Called by the match service in the transaction that created ``detection``; the tasks are
    sent after it commits, so a worker never looks for a detection that is not there yet.
    """
    for endpoint in _live_endpoints(detection):
        _enqueue(endpoint=endpoint, detection_id=detection.pk, event=EVENT_DETECTION)


def _live_endpoints(detection: Detection) -> list[WebhookEndpoint]:
    return _live_endpoints_of(detection.organization_id)


def _live_endpoints_of(organization_id: int) -> list[WebhookEndpoint]:
    with scope(organization=organization_id):
        return list(
            WebhookEndpoint.objects.filter(
                organization_id=organization_id,
                enabled=True,
                deleted_at__isnull=True,
            )
        )


def event_section(event: str) -> str:
    """The payload key of a higher app's event: its first word (``report.filed`` → ``report``).

    Raises ValueError for an event without one, or whose first word the payload already uses.
    """
    section, dot, rest = event.partition(".")
    if not dot or not section or not rest or section in RESERVED_SECTIONS:
        raise ValueError(f"{event!r} is not an event a higher app may send (matching.webhooks)")
    return section


def event_notify(
    *,
    organization_id: int,
    detection_id: int | None,
    event: str,
    data: dict[str, Any],
    occurred_at: datetime | None = None,
) -> None:
    """Queue an event of a higher app (reports: ``report.opened``...) to each live endpoint of
    the organisation, after the current transaction commits.

    ``data`` (a JSON-able dict, checked now) travels with the task, as it was at the event, and
    is the payload's section named by the event's first word (``payload["report"]``); the
    detection, when ``detection_id`` names one that still exists at delivery, is sent as in
    every event (a purged one is left out, and the event still goes). ``occurred_at`` (default
    now) is the payload's ``created``. The caller decides what ``data`` may carry: it is sent
    as it is, signed, to every endpoint.
    """
    event_section(event)
    json.dumps(data)  # a TypeError here, not in the worker
    at = (occurred_at or timezone.now()).isoformat()
    for endpoint in _live_endpoints_of(organization_id):
        _enqueue(
            endpoint=endpoint,
            detection_id=detection_id,
            event=event,
            data=data,
            occurred_at=at,
        )


def detection_reviewed_notify(*, detection: Detection, category: str | None = None) -> None:
    """Queue a ``detection.reviewed`` delivery to each live endpoint of the detection's org.

    Called by the review services (matching.review) in the transaction that reviewed
    ``detection``; the review's outcome, category and time travel with the task, so each event
    says what that review did even if the detection is reviewed again before it is delivered.
    """
    reviewed_at = detection.reviewed_at or timezone.now()
    review = {
        "outcome": detection.status,
        "category": category or None,
        "reviewed_at": reviewed_at.isoformat(),
    }
    for endpoint in _live_endpoints(detection):
        _enqueue(endpoint=endpoint, detection_id=detection.pk, event=EVENT_REVIEWED, review=review)


def detection_retracted_notify(*, detection: Detection) -> None:
    """Queue a ``detection.retracted`` delivery to each live endpoint of the detection's org.

    Called by matching.retractions in the transaction that flagged ``detection`` retracted
    (every entry it matched through has left the lists); sent after commit.
    """
    for endpoint in _live_endpoints(detection):
        _enqueue(endpoint=endpoint, detection_id=detection.pk, event=EVENT_RETRACTED)


# --- delivery -----------------------------------------------------------------------------------


class _DeadlineExceededError(Exception):
    """The attempt's deadline passed between two network steps."""


class _ResponseTooLargeError(Exception):
    """The receiver sent more than RESPONSE_MAX_BYTES; what was read is all that is read."""


class _Deadline:
    """The instant (on the monotonic clock) by which one delivery attempt is over, whatever happens.

    A per-step timeout alone does not bound an attempt: a receiver that sends a byte every few
    seconds never lets one read time out. So every blocking step waits at most the step timeout
    and never past this instant, and ``capped`` says whether the deadline (rather than the step
    timeout) set the last wait, which is what a TimeoutError then means.
    """

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.at = time.monotonic() + seconds
        self.capped = False

    def wait(self, step: float) -> float:
        """How long the next blocking step may take; raises _DeadlineExceededError when none."""
        left = self.at - time.monotonic()
        if left <= 0:
            self.capped = True
            raise _DeadlineExceededError
        self.capped = left <= step
        return min(step, left)


class _BoundedReader(io.RawIOBase):
    """The response side of a connection: small reads, each bounded by the deadline, and at most
    RESPONSE_MAX_BYTES in all (we only need the status; the rest is read so the exchange ends
    cleanly and is dropped)."""

    def __init__(self, sock: socket.socket, wait: Callable[[], float]) -> None:
        super().__init__()
        self._sock = sock
        self._wait = wait
        self.received = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        room = min(len(buffer), READ_CHUNK_BYTES, RESPONSE_MAX_BYTES - self.received)
        if room <= 0:
            raise _ResponseTooLargeError
        self._sock.settimeout(self._wait())
        with memoryview(buffer) as view:
            count = self._sock.recv_into(view[:room], room)
        self.received += count
        return count


class _ReaderSource:
    """What ``http.client.HTTPResponse`` reads from: it only ever calls ``makefile("rb")``."""

    def __init__(self, reader: io.BufferedIOBase) -> None:
        self.reader = reader

    def makefile(self, mode: str) -> io.BufferedIOBase:
        return self.reader


class _PinnedHTTPConnection(http.client.HTTPConnection):
    """Connects to the checked address, while Host names the URL's host.

    Every blocking step (connect, the TLS handshake, each piece of the request, each read of the
    answer) waits at most the per-step timeout and never past the attempt's deadline.
    """

    def __init__(self, target: _Target, step_timeout: float, deadline: _Deadline) -> None:
        super().__init__(target.host, target.port, timeout=step_timeout)
        self.pinned_address = target.address
        self.step_timeout = step_timeout
        self.deadline = deadline

    def _wait(self) -> float:
        return self.deadline.wait(self.step_timeout)

    def _open(self) -> socket.socket:
        sock = socket.create_connection((self.pinned_address, self.port), self._wait())
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return sock

    def connect(self) -> None:
        self.sock = self._open()

    def send(self, data: Any) -> None:
        # In pieces, each under a fresh bound: one sendall of a large body to a receiver that
        # reads slowly would otherwise wait a whole step timeout per TLS record.
        if self.sock is None:
            self.connect()
        view = memoryview(data)
        for start in range(0, len(view), SEND_CHUNK_BYTES):
            self.sock.settimeout(self._wait())
            self.sock.sendall(view[start : start + SEND_CHUNK_BYTES])

    def read_response(self) -> http.client.HTTPResponse:
        """The receiver's status line and headers, read through the bounded reader.

        http.client parses them (and later the body's framing: length, chunks or close), but
        reads through our reader instead of a file of the socket, so no read escapes the bounds.
        """
        reader = io.BufferedReader(_BoundedReader(self.sock, self._wait), READ_CHUNK_BYTES)
        source = cast("socket.socket", _ReaderSource(reader))
        response = http.client.HTTPResponse(source, method="POST")
        response.begin()
        return response


class _PinnedHTTPSConnection(_PinnedHTTPConnection):
    """TLS to the checked address; SNI and certificate verification use the URL's host name."""

    default_port = http.client.HTTPS_PORT

    def __init__(self, target: _Target, step_timeout: float, deadline: _Deadline) -> None:
        super().__init__(target, step_timeout, deadline)
        self.tls_context = ssl.create_default_context()

    def connect(self) -> None:
        sock = self._open()
        try:
            # The handshake's timeout bounds the whole handshake, not each record of it.
            sock.settimeout(self._wait())
            self.sock = self.tls_context.wrap_socket(sock, server_hostname=self.host)
        except BaseException:
            sock.close()
            raise


@dataclass(frozen=True)
class _Outcome:
    ok: bool
    response_status: int | None = None
    error: str = ""


def _read_to_end(response: http.client.HTTPResponse) -> None:
    """Read and drop the body, to its end or to the size cap (the status is all we keep)."""
    try:
        while response.read(READ_CHUNK_BYTES):
            pass
    except (_ResponseTooLargeError, http.client.IncompleteRead):
        pass  # a long answer, or one cut short: the status already says what happened


def _judged(status: int, location: str | None) -> _Outcome:
    if 200 <= status < 300:
        return _Outcome(ok=True, response_status=status)
    if 300 <= status < 400:
        return _Outcome(
            ok=False,
            response_status=status,
            error=f"The receiver answered {status} with a redirect to {location or '(no Location)'}"
            "; HashHub does not follow redirects: register the final URL.",
        )
    return _Outcome(ok=False, response_status=status, error=f"The receiver answered HTTP {status}.")


def _deadline_exceeded(deadline: _Deadline, status: int | None) -> _Outcome:
    answered = f" (it had begun to answer HTTP {status})" if status is not None else ""
    return _Outcome(
        ok=False,
        response_status=status,
        error=f"Deadline exceeded: the delivery was not over within {deadline.seconds:g} seconds"
        f" (connecting, sending and reading the whole answer){answered}.",
    )


def _post(target: _Target, headers: dict[str, str], body: bytes, deadline: _Deadline) -> _Outcome:
    """One POST to the pinned address, over by ``deadline``; redirects are reported, not followed.

    The whole answer is read (at most RESPONSE_MAX_BYTES of it): an attempt whose receiver has
    not finished answering by the deadline failed, even after a 2xx status line.
    """
    step = float(settings.HASHHUB_WEBHOOK_TIMEOUT_SECONDS)
    connection_class = _PinnedHTTPSConnection if target.scheme == "https" else _PinnedHTTPConnection
    connection = connection_class(target, step, deadline)
    status: int | None = None
    try:
        connection.connect()
        connection.request("POST", target.path, body=body, headers=headers)
        response = connection.read_response()
        status = response.status
        location = response.getheader("Location")
        _read_to_end(response)
        return _judged(status, location)
    except _DeadlineExceededError:
        return _deadline_exceeded(deadline, status)
    except TimeoutError:
        if deadline.capped:
            return _deadline_exceeded(deadline, status)
        return _Outcome(
            ok=False, response_status=status, error=f"No answer within {step:g} seconds."
        )
    except _ResponseTooLargeError:
        return _Outcome(
            ok=False,
            response_status=status,
            error=f"The receiver's status line and headers exceed {RESPONSE_MAX_BYTES:,} bytes.",
        )
    except (OSError, http.client.HTTPException) as error:
        return _Outcome(ok=False, response_status=status, error=f"{type(error).__name__}: {error}")
    finally:
        connection.close()


def _record(
    *,
    endpoint: WebhookEndpoint,
    detection: Detection | None,
    event: str,
    event_id: str,
    attempt: int,
    status: str,
    response_status: int | None = None,
    error: str = "",
    started: float,
) -> WebhookDelivery:
    return WebhookDelivery.objects.create(
        organization_id=endpoint.organization_id,
        endpoint=endpoint,
        detection=detection,
        event=event,
        event_id=event_id,
        attempt=attempt,
        status=status,
        response_status=response_status,
        error=error[:ERROR_MAX_CHARS],
        duration_ms=round((time.monotonic() - started) * 1000),
    )


def webhook_attempt(
    *,
    endpoint_id: int,
    detection_id: int | None,
    event: str,
    event_id: str,
    attempt: int,
    review: dict[str, Any] | None = None,
    data: dict[str, Any] | None = None,
    occurred_at: str | None = None,
) -> bool:
    """Make one delivery attempt and log it; True when finished, False when it should be retried.

    Runs inside the organisation's scope (the task is a ScopedTask). Finished means delivered
    (2xx), refused by the SSRF guard, or nothing to do (endpoint deleted or disabled, detection
    purged). The URL is checked again now (DNS may have changed since it was registered) and the
    connection goes to the address that was checked. A failure at the last allowed attempt is
    logged as ``gave_up``. Writes one WebhookDelivery row per attempt that reaches the network
    stage; never the secret.
    """
    endpoint = WebhookEndpoint.objects.select_related("organization").filter(pk=endpoint_id).first()
    if endpoint is None or endpoint.deleted_at is not None or not endpoint.enabled:
        return True
    detection = None
    if detection_id is not None:
        detection = Detection.objects.filter(
            pk=detection_id, organization_id=endpoint.organization_id
        ).first()
        if detection is None and data is None:
            return True  # purged (retention) before it could be delivered
        # A higher app's event (``data``) is about more than the detection: it goes without it.
    started = time.monotonic()
    # From here on the attempt is bounded: the address check's DNS lookup counts against it (the
    # system resolver cannot be interrupted, but a slow one leaves no time for the rest).
    deadline = _Deadline(float(settings.HASHHUB_WEBHOOK_DEADLINE_SECONDS))
    last = attempt >= settings.HASHHUB_WEBHOOK_MAX_ATTEMPTS
    failed = WebhookDelivery.Status.GAVE_UP if last else WebhookDelivery.Status.FAILED
    log = functools.partial(
        _record,
        endpoint=endpoint,
        detection=detection,
        event=event,
        event_id=event_id,
        attempt=attempt,
        started=started,
    )
    try:
        target = _target_for(endpoint.url)
    except ServiceError as error:
        if error.code == "webhook_host_unresolvable":
            log(status=failed, error=error.message)  # DNS may come back: retry
            match_metrics.webhook_failed(target="organisation", outcome=failed)
            return False
        log(status=WebhookDelivery.Status.REFUSED, error=error.message)
        match_metrics.webhook_failed(target="organisation", outcome="refused")
        return True
    body = webhook_payload(
        event=event,
        event_id=event_id,
        organization=endpoint.organization,
        detection=detection,
        created=(
            datetime.fromisoformat(occurred_at)
            if occurred_at
            else _event_time(detection, review, event)
        ),
        review=review,
        data=data,
    )
    headers = webhook_headers(secret=endpoint.secret, event=event, event_id=event_id, body=body)
    outcome = _post(target, headers, body, deadline)
    if outcome.ok:
        log(status=WebhookDelivery.Status.SUCCEEDED, response_status=outcome.response_status)
        return True
    log(status=failed, response_status=outcome.response_status, error=outcome.error)
    match_metrics.webhook_failed(target="organisation", outcome=failed)
    logger.info("webhook %s attempt %d failed: %s", endpoint.public_id, attempt, outcome.error)
    return False


def _event_time(
    detection: Detection | None, review: dict[str, Any] | None, event: str = ""
) -> datetime:
    if event == EVENT_RETRACTED and detection is not None and detection.retracted_at is not None:
        return detection.retracted_at
    if review is not None:
        return datetime.fromisoformat(review["reviewed_at"])
    return detection.created if detection is not None else timezone.now()


def retry_delay_seconds(attempt: int) -> int:
    """Seconds to wait after failed ``attempt`` (1-based): 30 s x 4^(n-1), at most 6 h, +/-10 %."""
    base = min(RETRY_CAP_SECONDS, RETRY_BASE_SECONDS * RETRY_FACTOR ** max(0, attempt - 1))
    spread = base // 10
    return min(RETRY_CAP_SECONDS, base - spread + secrets.randbelow(2 * spread + 1))


def signed_post(
    *, url: str, secret: str, event: str, event_id: str, body: bytes
) -> tuple[bool, str]:
    """One signed POST of ``body`` to ``url`` through the SSRF guard, for a caller other than an
    organisation's endpoint (the staff webhook of matching.staff_alerts): the same signature,
    guard, pinned address and deadline as :func:`webhook_attempt`. Returns (finished, error):
    finished is True when delivered or refused by the guard (no retry helps), False when a
    retry may; ``error`` says what went wrong ("" when delivered)."""
    deadline = _Deadline(float(settings.HASHHUB_WEBHOOK_DEADLINE_SECONDS))
    try:
        target = _target_for(url)
    except ServiceError as error:
        refused = error.code != "webhook_host_unresolvable"
        match_metrics.webhook_failed(target="staff", outcome="refused" if refused else "failed")
        return refused, error.message
    headers = webhook_headers(secret=secret, event=event, event_id=event_id, body=body)
    outcome = _post(target, headers, body, deadline)
    if not outcome.ok:
        match_metrics.webhook_failed(target="staff", outcome="failed")
    return outcome.ok, outcome.error


DELIVERIES_PURGE_BATCH = 5000
"""Delivery log rows deleted per transaction by :func:`deliveries_purge`."""


def deliveries_purge(*, now: datetime | None = None) -> int:
    """Delete webhook delivery logs older than hub.retention's period for them
    (HASHHUB_WEBHOOK_DELIVERY_RETENTION_DAYS), except those of a detection a preservation hold
    keeps (matching.preservation); returns how many rows were deleted.

    Runs without a tenant scope (the daily retention task), in batches, each in its own
    transaction with one system audit event (``webhooks.deliveries_purged``) per organisation it
    touched. A detection's own purge takes its delivery logs with it whatever their age.
    """
    moment = now or timezone.now()
    period = retention.webhook_deliveries()
    cutoff = moment - period.delta
    with scopes_disabled():  # from beat: every organisation's rows
        due = WebhookDelivery.objects.filter(created__lt=cutoff).exclude(
            detection_id__in=preservation.held_detection_ids(now=moment)
        )
        return purge_due(
            due,
            action="webhooks.deliveries_purged",
            target_type="webhook_delivery",
            cutoff=cutoff,
            period=period,
            batch=DELIVERIES_PURGE_BATCH,
        )
