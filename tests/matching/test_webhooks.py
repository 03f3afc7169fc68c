"""Webhooks: signed deliveries to a real HTTP receiver on 127.0.0.1, the SSRF guard, the pages.

The receiver is a real ``http.server`` in a thread; nothing about HTTP is mocked. 127.0.0.1 is
only reachable because each test that delivers allows it (``HASHHUB_WEBHOOK_ALLOWED_NETWORKS``),
as an operator would allow a private network.
"""

from __future__ import annotations

import json
import secrets
import socket
import ssl
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import time_machine
from django.db import transaction
from django.test import Client
from django_scopes import scope, scopes_disabled

from hub.audit import Actor
from hub.errors import ServiceError
from hub.models import AuditEvent, Organization
from matching import webhooks
from matching.models import Detection, WebhookDelivery, WebhookEndpoint
from tests.conftest import wait_for

SYSTEM = Actor(system="test")
LOOPBACK = ["127.0.0.1/32"]


# --- a real receiver ----------------------------------------------------------------------------


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class Receiver:
    """What the receiver got, and what it answers next (status and extra headers)."""

    port: int = 0
    requests: list[Received] = field(default_factory=list)
    status: int = 204
    headers: dict[str, str] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hooks/hashhub"

    def signed_ok(self, secret: str, request: Received) -> bool:
        return webhooks.webhook_signature_verify(
            secret,
            request.headers["X-HashHub-Timestamp"],
            request.body,
            request.headers["X-HashHub-Signature"],
        )


def _serve(state: Receiver, tls: ssl.SSLContext | None = None) -> Iterator[Receiver]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length)
            state.requests.append(Received(self.path, dict(self.headers.items()), body))
            self.send_response(state.status)
            for name, value in state.headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            pass  # keep the test output quiet

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    if tls is not None:
        server.socket = tls.wrap_socket(server.socket, server_side=True)
    state.port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    yield from _serve(Receiver())


@pytest.fixture
def tls_receiver(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Receiver]:
    """An https receiver whose self-signed certificate names hooks.example.test only.

    The certificate is made trusted for this test through SSL_CERT_FILE, which OpenSSL reads
    when HashHub builds its default TLS context.
    """
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-keyout", str(key), "-out", str(cert), "-subj", "/CN=hooks.example.test",
         "-addext", "subjectAltName=DNS:hooks.example.test"],
        check=True, capture_output=True,
    )  # fmt: skip
    monkeypatch.setenv("SSL_CERT_FILE", str(cert))
    tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    tls.load_cert_chain(cert, key)
    yield from _serve(Receiver(), tls)


@pytest.fixture
def allow_loopback(settings: Any) -> None:
    settings.HASHHUB_WEBHOOK_ALLOWED_NETWORKS = LOOPBACK


@pytest.fixture
def fake_dns(monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """Names the test makes resolve to an address of its choice (the rest resolve normally)."""
    names: dict[str, str] = {}
    real = socket.getaddrinfo

    def getaddrinfo(host: Any, port: Any, *args: Any, **kwargs: Any) -> Any:
        if host in names:
            return real(names[host], port, *args, **kwargs)
        return real(host, port, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    return names


def _hex64() -> str:
    return secrets.token_hex(32)


def make_detection(org: Organization) -> Detection:
    value = _hex64()
    matches = [
        {
            "type": "pdq",
            "value": value,
            "matches": [
                {
                    "list": {
                        "id": "x",
                        "name": "CSAM",
                        "category": "csam",
                        "tier": "own",
                        "contributor": "Org A",
                        "anonymous": False,
                    },
                    "distance": 3,
                    "matched_value": _hex64(),
                }
            ],
        }
    ]
    with scope(organization=org.pk):
        return Detection.objects.create(
            organization=org,
            source_label="test key",
            content_ref="upload-1",
            submitted=[{"type": "pdq", "value": value}],
            matches=matches,
            match_count=1,
            tiers=["own"],
            categories=["csam"],
        )


def make_endpoint(org: Organization, url: str) -> tuple[WebhookEndpoint, str]:
    with scope(organization=org.pk):
        return webhooks.webhook_create(org=org, url=url, description="test", actor=SYSTEM)


def attempt(
    endpoint: WebhookEndpoint,
    detection: Detection | None = None,
    *,
    number: int = 1,
    event: str = "detection.created",
) -> bool:
    with scope(organization=endpoint.organization_id):
        return webhooks.webhook_attempt(
            endpoint_id=endpoint.pk,
            detection_id=detection.pk if detection else None,
            event=event,
            event_id="evt-1",
            attempt=number,
        )


def deliveries(endpoint: WebhookEndpoint) -> list[WebhookDelivery]:
    with scopes_disabled():
        return list(WebhookDelivery.objects.filter(endpoint=endpoint).order_by("id"))


# --- signing ------------------------------------------------------------------------------------


@pytest.mark.clock
def test_a_signature_verifies_with_the_secret_and_a_recent_timestamp() -> None:
    body = b'{"id":"e1","event":"ping"}'
    now = int(time.time())
    header = webhooks.webhook_signature("whsec_s", now, body)
    assert header.startswith("v1=")
    assert webhooks.webhook_signature_verify("whsec_s", str(now), body, header)
    # Several signatures in one header (a receiver-side convention): one valid is enough.
    assert webhooks.webhook_signature_verify("whsec_s", now, body, f"v1=00, {header}")


@pytest.mark.clock
def test_a_tampered_body_a_wrong_secret_or_an_old_timestamp_fails() -> None:
    body = b'{"id":"e1","event":"ping"}'
    now = int(time.time())
    header = webhooks.webhook_signature("whsec_s", now, body)
    assert not webhooks.webhook_signature_verify("whsec_s", now, body + b" ", header)
    assert not webhooks.webhook_signature_verify("whsec_other", now, body, header)
    assert not webhooks.webhook_signature_verify("whsec_s", now + 1, body, header)
    old = now - 301
    old_header = webhooks.webhook_signature("whsec_s", old, body)
    assert not webhooks.webhook_signature_verify("whsec_s", old, body, old_header)
    assert webhooks.webhook_signature_verify("whsec_s", old, body, old_header, tolerance=600)
    assert not webhooks.webhook_signature_verify("whsec_s", "soon", body, header)
    assert not webhooks.webhook_signature_verify("whsec_s", now, body, "")


# --- delivery -----------------------------------------------------------------------------------


def test_a_detection_is_delivered_signed_to_the_receiver(
    org_a: Organization, receiver: Receiver, allow_loopback: None
) -> None:
    endpoint, secret = make_endpoint(org_a, receiver.url)
    detection = make_detection(org_a)

    assert attempt(endpoint, detection) is True

    [request] = receiver.requests
    assert receiver.signed_ok(secret, request)
    assert request.path == "/hooks/hashhub"
    assert request.headers["X-HashHub-Event"] == "detection.created"
    assert request.headers["X-HashHub-Delivery"] == "evt-1"
    assert request.headers["Content-Type"] == "application/json"
    assert request.headers["User-Agent"].startswith("HashHub-Webhooks/")
    payload = json.loads(request.body)
    assert payload["id"] == "evt-1"
    assert payload["event"] == "detection.created"
    assert payload["organization"] == "org-a"
    assert payload["detection"]["id"] == detection.public_id
    assert payload["detection"]["content_ref"] == "upload-1"
    assert payload["detection"]["status"] == "new"
    assert payload["detection"]["matches"] == detection.matches
    assert payload["detection"]["submitted"] == detection.submitted
    assert payload["detection"]["match_count"] == 1
    [row] = deliveries(endpoint)
    assert (row.status, row.response_status, row.attempt) == ("succeeded", 204, 1)
    assert row.detection_id == detection.pk
    assert row.duration_ms is not None
    assert secret not in row.error


def test_a_ping_carries_no_detection(
    org_a: Organization, receiver: Receiver, allow_loopback: None
) -> None:
    endpoint, secret = make_endpoint(org_a, receiver.url)
    assert attempt(endpoint, event="ping") is True
    [request] = receiver.requests
    assert receiver.signed_ok(secret, request)
    payload = json.loads(request.body)
    assert payload["event"] == "ping"
    assert "detection" not in payload


def test_a_500_is_logged_as_failed_and_retried_and_the_last_attempt_gives_up(
    org_a: Organization, receiver: Receiver, allow_loopback: None, settings: Any
) -> None:
    settings.HASHHUB_WEBHOOK_MAX_ATTEMPTS = 3
    receiver.status = 500
    endpoint, _secret = make_endpoint(org_a, receiver.url)
    detection = make_detection(org_a)

    assert attempt(endpoint, detection, number=1) is False
    assert attempt(endpoint, detection, number=3) is False

    first, last = deliveries(endpoint)
    assert (first.status, first.response_status, first.attempt) == ("failed", 500, 1)
    assert "500" in first.error
    assert (last.status, last.response_status, last.attempt) == ("gave_up", 500, 3)
    assert len(receiver.requests) == 2


def test_an_unreachable_receiver_is_a_failed_attempt(
    org_a: Organization, allow_loopback: None
) -> None:
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    endpoint, _secret = make_endpoint(org_a, f"http://127.0.0.1:{port}/")
    assert attempt(endpoint, event="ping") is False
    [row] = deliveries(endpoint)
    assert row.status == "failed"
    assert row.response_status is None
    assert "Connection" in row.error


def test_redirects_are_not_followed(
    org_a: Organization, receiver: Receiver, allow_loopback: None
) -> None:
    receiver.status = 307
    receiver.headers = {"Location": f"http://127.0.0.1:{receiver.port}/elsewhere"}
    endpoint, _secret = make_endpoint(org_a, receiver.url)

    assert attempt(endpoint, event="ping") is False

    assert [r.path for r in receiver.requests] == ["/hooks/hashhub"]
    [row] = deliveries(endpoint)
    assert (row.status, row.response_status) == ("failed", 307)
    assert "does not follow redirects" in row.error


def test_a_deleted_endpoint_gets_nothing(
    org_a: Organization, receiver: Receiver, allow_loopback: None
) -> None:
    endpoint, _secret = make_endpoint(org_a, receiver.url)
    detection = make_detection(org_a)
    with scope(organization=org_a.pk):
        webhooks.webhook_delete(endpoint=endpoint, actor=SYSTEM)

    assert attempt(endpoint, detection) is True  # a queued retry finds it deleted: done

    assert receiver.requests == []
    assert deliveries(endpoint) == []


def test_a_purged_detection_is_not_delivered(
    org_a: Organization, receiver: Receiver, allow_loopback: None
) -> None:
    endpoint, _secret = make_endpoint(org_a, receiver.url)
    detection = make_detection(org_a)
    with scope(organization=org_a.pk):
        Detection.objects.filter(pk=detection.pk).delete()
    assert attempt(endpoint, detection) is True
    assert receiver.requests == []


def test_the_connection_goes_to_the_checked_address_with_the_original_host(
    org_a: Organization, receiver: Receiver, allow_loopback: None, fake_dns: dict[str, str]
) -> None:
    fake_dns["hooks.example.test"] = "127.0.0.1"
    endpoint, secret = make_endpoint(org_a, f"http://hooks.example.test:{receiver.port}/in")

    assert attempt(endpoint, event="ping") is True

    [request] = receiver.requests
    assert request.headers["Host"] == f"hooks.example.test:{receiver.port}"
    assert receiver.signed_ok(secret, request)


def test_https_goes_to_the_checked_address_with_sni_and_the_certificate_of_the_name(
    org_a: Organization,
    tls_receiver: Receiver,
    allow_loopback: None,
    fake_dns: dict[str, str],
) -> None:
    fake_dns["hooks.example.test"] = "127.0.0.1"
    endpoint, secret = make_endpoint(org_a, f"https://hooks.example.test:{tls_receiver.port}/in")

    assert attempt(endpoint, event="ping") is True

    [request] = tls_receiver.requests
    assert request.headers["Host"] == f"hooks.example.test:{tls_receiver.port}"
    assert tls_receiver.signed_ok(secret, request)


def test_https_to_a_name_the_certificate_does_not_cover_fails(
    org_a: Organization,
    tls_receiver: Receiver,
    allow_loopback: None,
    fake_dns: dict[str, str],
) -> None:
    fake_dns["other.example.test"] = "127.0.0.1"
    endpoint, _secret = make_endpoint(org_a, f"https://other.example.test:{tls_receiver.port}/")

    assert attempt(endpoint, event="ping") is False

    assert tls_receiver.requests == []
    [row] = deliveries(endpoint)
    assert row.status == "failed"
    assert "certificate" in row.error.lower()


# --- the SSRF guard -----------------------------------------------------------------------------

REFUSED_URLS = [
    "http://10.0.0.1/hook",
    "http://192.168.1.1/hook",
    "http://172.16.5.4/hook",
    "http://169.254.169.254/latest/meta-data/",
    "http://[fd00:ec2::254]/",
    "http://100.100.100.200/",
    "http://metadata.google.internal/computeMetadata/v1/",
    "http://[::1]/hook",
    "http://127.0.0.1/hook",
    "http://localhost/hook",
    "http://0.0.0.0/hook",
    "http://100.64.0.1/hook",
    "http://224.0.0.1/hook",
    "http://[fe80::1]/hook",
    "http://[::ffff:10.0.0.1]/hook",
    "http://[::ffff:127.0.0.1]/hook",
    "http://[64:ff9b::a00:1]/hook",
]


@pytest.mark.parametrize("url", REFUSED_URLS)
def test_private_loopback_and_metadata_addresses_are_refused(url: str, org_a: Organization) -> None:
    with pytest.raises(ServiceError) as refused:
        webhooks.webhook_url_check(url)
    assert refused.value.code == "webhook_url_not_allowed"
    assert "will not send webhooks" in refused.value.message
    with pytest.raises(ServiceError), scope(organization=org_a.pk):
        webhooks.webhook_create(org=org_a, url=url, description="", actor=SYSTEM)
    with scope(organization=org_a.pk):
        assert not WebhookEndpoint.objects.exists()


def test_a_name_resolving_to_loopback_is_refused_unless_allowed(
    settings: Any, fake_dns: dict[str, str]
) -> None:
    fake_dns["rebind.example.test"] = "127.0.0.1"
    with pytest.raises(ServiceError) as refused:
        webhooks.webhook_url_check("https://rebind.example.test/hook")
    assert refused.value.code == "webhook_url_not_allowed"
    assert "127.0.0.1" in refused.value.message
    settings.HASHHUB_WEBHOOK_ALLOWED_NETWORKS = LOOPBACK
    webhooks.webhook_url_check("https://rebind.example.test/hook")


def test_metadata_stays_refused_inside_an_allowed_network(settings: Any) -> None:
    settings.HASHHUB_WEBHOOK_ALLOWED_NETWORKS = ["169.254.0.0/16"]
    webhooks.webhook_url_check("http://169.254.10.10/hook")
    with pytest.raises(ServiceError):
        webhooks.webhook_url_check("http://169.254.169.254/")


@pytest.mark.parametrize(
    "url",
    [
        "ftp://203.0.114.1/hook",
        "file:///etc/passwd",
        "http://user:pass@8.8.8.8/hook",
        "http://8.8.8.8:99999/hook",
        "http:///hook",
        "",
    ],
)
def test_a_malformed_url_is_refused(url: str) -> None:
    with pytest.raises(ServiceError) as refused:
        webhooks.webhook_url_check(url)
    assert refused.value.code == "invalid_url"


def test_a_public_address_passes() -> None:
    webhooks.webhook_url_check("https://8.8.8.8/hook")
    webhooks.webhook_url_check("https://[2001:4860:4860::8888]/hook")


def test_a_refused_address_at_delivery_time_reaches_nobody(
    org_a: Organization, receiver: Receiver, settings: Any
) -> None:
    settings.HASHHUB_WEBHOOK_ALLOWED_NETWORKS = LOOPBACK
    endpoint, _secret = make_endpoint(org_a, receiver.url)
    settings.HASHHUB_WEBHOOK_ALLOWED_NETWORKS = []  # the operator withdrew the exception

    assert attempt(endpoint, event="ping") is True  # refused for good: no retry

    assert receiver.requests == []
    [row] = deliveries(endpoint)
    assert row.status == "refused"
    assert "loopback" in row.error


def test_a_name_that_turns_private_after_registration_is_refused_at_delivery(
    org_a: Organization, receiver: Receiver, allow_loopback: None, fake_dns: dict[str, str]
) -> None:
    fake_dns["flip.example.test"] = "127.0.0.1"
    endpoint, _secret = make_endpoint(org_a, f"http://flip.example.test:{receiver.port}/")
    fake_dns["flip.example.test"] = "10.0.0.1"  # DNS now points inside

    assert attempt(endpoint, event="ping") is True

    assert receiver.requests == []
    assert [row.status for row in deliveries(endpoint)] == ["refused"]


def test_retry_delays_grow_and_are_capped() -> None:
    assert 27 <= webhooks.retry_delay_seconds(1) <= 33
    assert 108 <= webhooks.retry_delay_seconds(2) <= 132
    assert 432 <= webhooks.retry_delay_seconds(3) <= 528
    assert all(webhooks.retry_delay_seconds(n) <= 6 * 3600 for n in range(1, 30))
    assert webhooks.retry_delay_seconds(20) >= 6 * 3600 * 0.9


# --- enqueueing -----------------------------------------------------------------------------------


def test_detection_notify_queues_one_delivery_per_live_endpoint(
    org_a: Organization,
    org_b: Organization,
    django_capture_on_commit_callbacks: Callable[..., Any],
) -> None:
    first, _ = make_endpoint(org_a, "https://8.8.8.8/one")
    second, _ = make_endpoint(org_a, "https://8.8.4.4/two")
    make_endpoint(org_b, "https://1.1.1.1/other-org")
    with scope(organization=org_a.pk):
        webhooks.webhook_delete(endpoint=second, actor=SYSTEM)
    detection = make_detection(org_a)

    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        webhooks.detection_notify(detection=detection)

    assert len(callbacks) == 1
    kwargs = callbacks[0].keywords["kwargs"]
    assert kwargs["endpoint_id"] == first.pk
    assert kwargs["organization_id"] == org_a.pk
    assert kwargs["detection_id"] == detection.pk
    assert kwargs["event"] == "detection.created"
    assert kwargs["attempt"] == 1
    assert kwargs["event_id"]


# --- the pages ----------------------------------------------------------------------------------


def _audit(org: Organization, action: str) -> list[AuditEvent]:
    with scopes_disabled():
        return list(AuditEvent.objects.filter(organization=org, action=action))


def test_alice_creates_a_webhook_and_sees_its_secret_once(
    alice_client: Client, org_a: Organization
) -> None:
    response = alice_client.post(
        "/o/org-a/webhooks/", {"url": "https://8.8.8.8/hook", "description": "prod"}
    )
    assert response.status_code == 201
    assert response["Cache-Control"] == "no-store"
    with scope(organization=org_a.pk):
        endpoint = WebhookEndpoint.objects.get()
    assert endpoint.secret.startswith("whsec_")
    assert endpoint.secret in response.content.decode()

    again = alice_client.get("/o/org-a/webhooks/")
    assert again.status_code == 200
    assert "https://8.8.8.8/hook" in again.content.decode()
    assert endpoint.secret not in again.content.decode()
    detail = alice_client.get(f"/o/org-a/webhooks/{endpoint.public_id}/")
    assert detail.status_code == 200
    assert endpoint.secret not in detail.content.decode()

    [event] = _audit(org_a, "webhook.created")
    assert event.target_id == endpoint.public_id
    assert endpoint.secret not in json.dumps(event.metadata)


def test_the_webhooks_page_documents_the_signature(alice_client: Client) -> None:
    page = alice_client.get("/o/org-a/webhooks/").content.decode()
    assert "X-HashHub-Signature" in page
    assert "hmac.compare_digest" in page


@pytest.mark.parametrize(
    ("url", "code"),
    [
        ("http://10.0.0.1/hook", "webhook_url_not_allowed"),
        ("http://169.254.169.254/latest/meta-data/", "webhook_url_not_allowed"),
        ("http://[::1]/hook", "webhook_url_not_allowed"),
        ("http://localhost:8000/hook", "webhook_url_not_allowed"),
        ("http://user:pw@8.8.8.8/hook", "invalid_url"),
    ],
)
def test_a_refused_url_is_a_400_with_its_code(
    alice_client: Client, org_a: Organization, url: str, code: str
) -> None:
    response = alice_client.post("/o/org-a/webhooks/", {"url": url})
    assert response.status_code == 400
    assert code in response.content.decode()
    with scope(organization=org_a.pk):
        assert not WebhookEndpoint.objects.exists()


def test_a_malformed_form_is_a_400(alice_client: Client) -> None:
    response = alice_client.post("/o/org-a/webhooks/", {"url": "not a url", "description": ""})
    assert response.status_code == 400
    assert "Enter a valid URL" in response.content.decode()


def test_the_detail_page_shows_the_delivery_log(
    alice_client: Client, org_a: Organization, receiver: Receiver, allow_loopback: None
) -> None:
    receiver.status = 503
    endpoint, _secret = make_endpoint(org_a, receiver.url)
    attempt(endpoint, event="ping")
    page = alice_client.get(f"/o/org-a/webhooks/{endpoint.public_id}/").content.decode()
    assert 'data-status="failed"' in page
    assert "503" in page
    listing = alice_client.get("/o/org-a/webhooks/").content.decode()
    assert "Failed" in listing


def test_rotating_shows_a_new_secret_once_and_audits_without_it(
    alice_client: Client, org_a: Organization
) -> None:
    endpoint, old = make_endpoint(org_a, "https://8.8.8.8/hook")
    response = alice_client.post(f"/o/org-a/webhooks/{endpoint.public_id}/rotate/")
    assert response.status_code == 201
    endpoint.refresh_from_db()
    assert endpoint.secret != old
    assert endpoint.secret in response.content.decode()
    assert old not in response.content.decode()
    [event] = _audit(org_a, "webhook.secret_rotated")
    assert endpoint.secret not in json.dumps(event.metadata)
    assert old not in json.dumps(event.metadata)


def test_a_test_ping_is_queued_and_audited(
    alice_client: Client,
    org_a: Organization,
    django_capture_on_commit_callbacks: Callable[..., Any],
) -> None:
    endpoint, _secret = make_endpoint(org_a, "https://8.8.8.8/hook")
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        response = alice_client.post(f"/o/org-a/webhooks/{endpoint.public_id}/test/")
    assert response.status_code == 302
    assert response["Location"] == f"/o/org-a/webhooks/{endpoint.public_id}/"
    [callback] = callbacks
    assert callback.keywords["kwargs"]["event"] == "ping"
    assert callback.keywords["kwargs"]["detection_id"] is None
    [event] = _audit(org_a, "webhook.tested")
    assert event.metadata["event_id"] == callback.keywords["kwargs"]["event_id"]


def test_deleting_hides_the_endpoint_and_audits(alice_client: Client, org_a: Organization) -> None:
    endpoint, _secret = make_endpoint(org_a, "https://8.8.8.8/hook")
    response = alice_client.post(f"/o/org-a/webhooks/{endpoint.public_id}/delete/")
    assert response.status_code == 302
    assert response["Location"] == "/o/org-a/webhooks/"
    endpoint.refresh_from_db()
    assert endpoint.deleted_at is not None
    assert not endpoint.enabled
    assert alice_client.get(f"/o/org-a/webhooks/{endpoint.public_id}/").status_code == 404
    assert "https://8.8.8.8/hook" not in alice_client.get("/o/org-a/webhooks/").content.decode()
    assert len(_audit(org_a, "webhook.deleted")) == 1


@pytest.mark.parametrize("action", ["delete", "test", "rotate"])
def test_actions_are_post_only(alice_client: Client, org_a: Organization, action: str) -> None:
    endpoint, _secret = make_endpoint(org_a, "https://8.8.8.8/hook")
    assert alice_client.get(f"/o/org-a/webhooks/{endpoint.public_id}/{action}/").status_code == 405


def test_bob_the_viewer_may_not_manage_webhooks(bob_client: Client, org_a: Organization) -> None:
    endpoint, secret = make_endpoint(org_a, "https://8.8.8.8/hook")
    base = f"/o/org-a/webhooks/{endpoint.public_id}"
    assert bob_client.get("/o/org-a/webhooks/").status_code == 403
    assert bob_client.post("/o/org-a/webhooks/", {"url": "https://8.8.4.4/"}).status_code == 403
    assert bob_client.get(f"{base}/").status_code == 403
    for action in ("delete", "test", "rotate"):
        response = bob_client.post(f"{base}/{action}/")
        assert response.status_code == 403
        assert secret not in response.content.decode()
    endpoint.refresh_from_db()
    assert (endpoint.secret, endpoint.deleted_at) == (secret, None)


def test_charlie_gets_404_for_org_as_webhooks(
    charlie_client: Client, org_a: Organization, org_b: Organization
) -> None:
    endpoint, secret = make_endpoint(org_a, "https://8.8.8.8/hook")
    # Through org A's URL (not a member) and through his own org's URL with A's id.
    for base in (
        f"/o/org-a/webhooks/{endpoint.public_id}",
        f"/o/org-b/webhooks/{endpoint.public_id}",
    ):
        assert charlie_client.get(f"{base}/").status_code == 404
        for action in ("delete", "test", "rotate"):
            assert charlie_client.post(f"{base}/{action}/").status_code == 404
    assert charlie_client.get("/o/org-a/webhooks/").status_code == 404
    own = charlie_client.get("/o/org-b/webhooks/").content.decode()
    assert "8.8.8.8" not in own
    endpoint.refresh_from_db()
    assert (endpoint.secret, endpoint.deleted_at) == (secret, None)


# --- end to end, with a real Celery worker ----------------------------------------------------


@pytest.fixture
def worker_env_allows_loopback(monkeypatch: pytest.MonkeyPatch, settings: Any) -> None:
    # The worker is another process: it reads the allowed networks from its environment, which
    # celery_worker_process copies when it starts (so request this fixture before that one).
    monkeypatch.setenv("HASHHUB_WEBHOOK_ALLOWED_NETWORKS", ",".join(LOOPBACK))
    settings.HASHHUB_WEBHOOK_ALLOWED_NETWORKS = LOOPBACK


@pytest.mark.celery
def test_a_real_worker_delivers_a_new_detection(
    transactional_db: None,
    worker_env_allows_loopback: None,
    receiver: Receiver,
    celery_worker_process: subprocess.Popen[str],
) -> None:
    from tests.factories import OrganizationFactory

    worker = celery_worker_process
    org = OrganizationFactory.create(name="Worker Org", slug="worker-org")
    endpoint, secret = make_endpoint(org, receiver.url)
    with transaction.atomic():
        detection = make_detection(org)
        webhooks.detection_notify(detection=detection)
        assert receiver.requests == []  # nothing leaves before the commit

    def delivered() -> list[WebhookDelivery]:
        rows = deliveries(endpoint)
        return rows if receiver.requests and rows else []

    rows = wait_for(delivered, worker, seconds=90)
    if not rows:
        worker.terminate()
        output = worker.stdout.read() if worker.stdout else ""
        pytest.fail(f"the worker delivered nothing; its output:\n{output}")
    [request] = receiver.requests
    assert receiver.signed_ok(secret, request)
    assert json.loads(request.body)["detection"]["id"] == detection.public_id
    [row] = rows
    assert (row.status, row.response_status, row.event) == ("succeeded", 204, "detection.created")
    assert row.event_id == request.headers["X-HashHub-Delivery"]


# --- issue 18: a deadline per attempt, a queue of their own, test pings limited ------------------

TRICKLE_INTERVAL = 0.2


@dataclass
class ScriptedReceiver:
    """A receiver whose answer is written by ``script(wfile, stop)`` after it read the request."""

    script: Callable[[Any, threading.Event], None]
    port: int = 0
    stop: threading.Event = field(default_factory=threading.Event)
    requests: int = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hooks/hashhub"


@contextmanager
def scripted_receiver(script: Callable[[Any, threading.Event], None]) -> Iterator[ScriptedReceiver]:
    state = ScriptedReceiver(script)

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            state.requests += 1
            with suppress(OSError):  # HashHub hung up on us: that is the point
                state.script(self.wfile, state.stop)
            self.close_connection = True

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    state.port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        state.stop.set()
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def trickle(data: bytes) -> Callable[[Any, threading.Event], None]:
    """Write ``data`` a byte every TRICKLE_INTERVAL: never slow enough for a read to time out."""

    def script(wfile: Any, stop: threading.Event) -> None:
        for index in range(len(data)):
            if stop.wait(TRICKLE_INTERVAL):
                return
            wfile.write(data[index : index + 1])
            wfile.flush()

    return script


def head_then_trickle(wfile: Any, stop: threading.Event) -> None:
    # The status line and headers at once, then a 60-byte body at a byte every 0.2 s (12 s).
    wfile.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 60\r\n\r\n")
    wfile.flush()
    trickle(b"x" * 60)(wfile, stop)


# The status line and headers themselves a byte at a time (about 14 s in all).
trickled_head = trickle(
    b"HTTP/1.1 200 OK\r\nX-Padding: " + b"p" * 30 + b"\r\nContent-Length: 0\r\n\r\n"
)


@pytest.mark.parametrize(
    "script", [head_then_trickle, trickled_head], ids=["trickled-body", "trickled-head"]
)
def test_a_receiver_that_trickles_its_answer_is_cut_off_at_the_deadline_and_retried(
    script: Callable[[Any, threading.Event], None],
    org_a: Organization,
    allow_loopback: None,
    settings: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from matching import tasks

    # Each byte comes long before the 10 s step timeout: only the deadline can stop this.
    settings.HASHHUB_WEBHOOK_TIMEOUT_SECONDS = 10
    settings.HASHHUB_WEBHOOK_DEADLINE_SECONDS = 1
    retries: list[dict[str, Any]] = []
    monkeypatch.setattr(tasks.deliver_webhook, "apply_async", lambda **kw: retries.append(kw))
    with scripted_receiver(script) as receiver:
        endpoint, _secret = make_endpoint(org_a, receiver.url)
        started = time.monotonic()
        tasks.deliver_webhook(
            organization_id=org_a.pk,
            endpoint_id=endpoint.pk,
            detection_id=None,
            event="ping",
            event_id="evt-slow",
            attempt=1,
        )
        elapsed = time.monotonic() - started
        assert receiver.requests == 1

    # The whole answer would take 12 s or more; the attempt ended at about the 1 s deadline.
    assert elapsed < 5, f"the attempt took {elapsed:.1f} s"
    [row] = deliveries(endpoint)
    assert (row.status, row.attempt) == ("failed", 1)
    assert "deadline exceeded" in row.error.lower()
    assert row.duration_ms is not None and row.duration_ms < 5000
    if script is head_then_trickle:
        assert row.response_status == 200  # it had begun to answer, but never finished
    # Retried like any failure, on the usual backoff.
    [retry] = retries
    assert retry["kwargs"]["attempt"] == 2
    assert retry["kwargs"]["event_id"] == "evt-slow"
    assert 27 <= retry["countdown"] <= 33


def test_a_long_answer_is_read_only_up_to_the_cap_and_its_status_stands(
    org_a: Organization, allow_loopback: None, settings: Any
) -> None:
    settings.HASHHUB_WEBHOOK_DEADLINE_SECONDS = 5

    def endless(wfile: Any, stop: threading.Event) -> None:
        # No length: the body runs to the close, which never comes while we keep sending.
        wfile.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\n")
        while not stop.is_set():
            wfile.write(b"y" * 65536)

    with scripted_receiver(endless) as receiver:
        endpoint, _secret = make_endpoint(org_a, receiver.url)
        started = time.monotonic()
        assert attempt(endpoint, event="ping") is True
        elapsed = time.monotonic() - started

    assert elapsed < 4, f"the attempt took {elapsed:.1f} s"  # it did not wait for the deadline
    [row] = deliveries(endpoint)
    assert (row.status, row.response_status) == ("succeeded", 200)


def test_webhook_deliveries_are_routed_to_the_webhooks_queue() -> None:
    from hub.celery import app

    router = app.amqp.router
    assert router.route({}, webhooks.DELIVER_TASK)["queue"].name == "webhooks"
    # Imports and digests have queues of their own (README "Production"); the rest stays on
    # the default queue.
    expected = {
        "lists.source_run": "imports",
        "lists.run_import_job": "imports",
        "matching.send_digests": "digests",
        "matching.reconcile": "celery",
    }
    for task, queue in expected.items():
        assert router.route({}, task)["queue"].name == queue, task


def test_a_queued_delivery_lands_in_the_webhooks_queue_of_the_broker(
    org_a: Organization, django_capture_on_commit_callbacks: Callable[..., Any]
) -> None:
    from hub.celery import app

    endpoint, _secret = make_endpoint(org_a, "https://8.8.8.8/hook")
    with django_capture_on_commit_callbacks(execute=True), scope(organization=org_a.pk):
        event_id = webhooks.webhook_ping(endpoint=endpoint, actor=SYSTEM)

    with app.connection_for_read() as connection:
        redis = connection.default_channel.client  # type: ignore[attr-defined]
        [message] = redis.lrange("webhooks", 0, -1)
        assert redis.llen("celery") == 0
    assert json.loads(message)["headers"]["task"] == webhooks.DELIVER_TASK
    assert event_id in message.decode()


def _option(command: list[str], *names: str) -> str:
    for index, word in enumerate(command):
        if word in names:
            return command[index + 1]
    raise AssertionError(f"no {names} in {command}")


def test_the_procfile_gives_webhooks_a_worker_of_their_own_with_bounded_concurrency() -> None:
    import shlex

    from honcho.environ import parse_procfile

    from hub.celery import app

    procfile = Path(__file__).resolve().parents[2] / "hub" / "Procfile"
    processes = parse_procfile(procfile.read_text()).processes
    workers = {
        name: shlex.split(command)
        for name, command in processes.items()
        if " worker " in f" {command} "
    }
    consumed = {
        name: set(_option(cmd, "-Q", "--queues").split(",")) for name, cmd in workers.items()
    }
    # Every queue has a worker, and the one that delivers webhooks consumes nothing else.
    assert set().union(*consumed.values()) == set(app.amqp.queues)
    [webhook_worker] = [name for name, queues in consumed.items() if "webhooks" in queues]
    assert consumed[webhook_worker] == {"webhooks"}
    command = workers[webhook_worker]
    assert _option(command, "--concurrency", "-c") == "${HASHHUB_WEBHOOK_CONCURRENCY:-2}"
    # Two workers on one host need two node names.
    names = [_option(cmd, "-n", "--hostname") for cmd in workers.values()]
    assert len(set(names)) == len(names)


def test_the_sixth_test_ping_in_the_window_is_refused_with_429_and_nothing_is_queued(
    alice_client: Client,
    charlie_client: Client,
    org_a: Organization,
    org_b: Organization,
    django_capture_on_commit_callbacks: Callable[..., Any],
) -> None:
    first, _ = make_endpoint(org_a, "https://8.8.8.8/one")
    second, _ = make_endpoint(org_a, "https://8.8.4.4/two")
    elsewhere, _ = make_endpoint(org_b, "https://1.1.1.1/other-org")

    def ping(client: Client, endpoint: WebhookEndpoint) -> Any:
        return client.post(f"/o/{endpoint.organization.slug}/webhooks/{endpoint.public_id}/test/")

    # A minute into the current ten-minute window (windows start on the clock's tens), frozen.
    window_start = int(time.time()) // 600 * 600
    with time_machine.travel(window_start + 60, tick=False) as clock:
        with django_capture_on_commit_callbacks(execute=False) as sent:
            for endpoint in (first, first, first, second, second):
                assert ping(alice_client, endpoint).status_code == 302
        assert len(sent) == 5

        # The limit is the organisation's, whichever of its endpoints is tested.
        with django_capture_on_commit_callbacks(execute=False) as refused:
            response = ping(alice_client, first)
        assert response.status_code == 429
        assert refused == []
        page = response.content.decode()
        assert "Test pings are limited to 5 per 10 minutes" in page
        assert "Try again in 9 minutes" in page
        assert response["Retry-After"] == "540"
        assert response["Cache-Control"] == "no-store"
        assert len(_audit(org_a, "webhook.tested")) == 5

        # Another organisation has a window of its own.
        with django_capture_on_commit_callbacks(execute=False) as theirs:
            assert ping(charlie_client, elsewhere).status_code == 302
        assert len(theirs) == 1

        # The next window starts afresh.
        clock.move_to(window_start + 600)
        with django_capture_on_commit_callbacks(execute=False) as later:
            assert ping(alice_client, first).status_code == 302
        assert len(later) == 1


def test_the_test_ping_rate_is_a_setting(
    org_a: Organization, settings: Any, django_capture_on_commit_callbacks: Callable[..., Any]
) -> None:
    settings.HASHHUB_WEBHOOK_TEST_RATE = "2/1h"
    endpoint, _ = make_endpoint(org_a, "https://8.8.8.8/hook")
    hour_start = int(time.time()) // 3600 * 3600
    with (
        time_machine.travel(hour_start + 30, tick=False),
        django_capture_on_commit_callbacks(execute=False) as sent,
        scope(organization=org_a.pk),
    ):
        webhooks.webhook_ping(endpoint=endpoint, actor=SYSTEM)
        webhooks.webhook_ping(endpoint=endpoint, actor=SYSTEM)
        with pytest.raises(ServiceError) as refused:
            webhooks.webhook_ping(endpoint=endpoint, actor=SYSTEM)
    assert len(sent) == 2
    assert (refused.value.code, refused.value.status) == ("rate_limited", 429)
    assert refused.value.details == {"limit": 2, "period_seconds": 3600, "retry_after": 3570}
    assert "2 per hour" in refused.value.message


@pytest.mark.parametrize("rate", ["5", "0/10m", "5/0m", "five/10m", "5/10y"])
def test_a_malformed_test_ping_rate_is_a_configuration_error(rate: str, settings: Any) -> None:
    from django.core.exceptions import ImproperlyConfigured

    settings.HASHHUB_WEBHOOK_TEST_RATE = rate
    with pytest.raises(ImproperlyConfigured, match="HASHHUB_WEBHOOK_TEST_RATE"):
        webhooks.ping_rate()
