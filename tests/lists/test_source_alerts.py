"""Alerts without a monitoring stack: a failing or overdue source e-mails staff and calls the
staff webhook once per incident, and once more when it recovers.

The upstream is a real HTTP server on 127.0.0.1 (tests/lists/feed_fixtures.py) and so is the
staff webhook's receiver; the webhook task, which lists queues by name, is run in place of the
broker by the test, through the same function the Celery task calls.
"""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
import time_machine
from django.core import mail

from hub.models import User
from lists.models import Source, SourceIncident
from lists.sources import alerts
from lists.sources import services as source_services
from lists.sources.adapters.http import Http
from matching import staff_alerts, webhooks
from tests.conftest import login, make_staff
from tests.lists.feed_fixtures import Reply, Upstream, quick_http, random_pdq, serve_upstream
from tests.lists.test_feed_runs import SYSTEM, csv_body, feed_source, publish, run

pytestmark = pytest.mark.django_db

SECRET = "staff-webhook-secret-of-the-tests"
START = dt.datetime(2026, 3, 18, 16, 30, tzinfo=dt.UTC)


@dataclass
class Receiver:
    port: int = 0
    deliveries: list[tuple[dict[str, str], bytes]] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hooks/staff"

    def events(self) -> list[tuple[str, str, str]]:
        """(event, incident kind, source name) of each delivery, checking its signature."""
        import json

        found = []
        for headers, body in self.deliveries:
            assert webhooks.webhook_signature_verify(
                SECRET, headers["X-HashHub-Timestamp"], body, headers["X-HashHub-Signature"]
            )
            data = json.loads(body)
            incident = data["incident"]
            found.append((data["event"], incident["kind"], incident["source"]["name"]))
        return found


@pytest.fixture
def receiver(settings: Any) -> Iterator[Receiver]:
    state = Receiver()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            state.deliveries.append((dict(self.headers.items()), body))
            self.send_response(204)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    state.port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    settings.HASHHUB_STAFF_WEBHOOK_URL = state.url
    settings.HASHHUB_STAFF_WEBHOOK_SECRET = SECRET
    settings.HASHHUB_WEBHOOK_ALLOWED_NETWORKS = ["127.0.0.1/32"]
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


@pytest.fixture(autouse=True)
def _webhook_task_in_place(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """What the broker would do with the task lists sends by name: run matching's task body."""
    sent: list[str] = []

    def send_task(name: str, kwargs: dict[str, Any], queue: str) -> None:
        assert (name, queue) == (alerts.STAFF_ALERT_TASK, "webhooks")
        sent.append(kwargs["event"])
        assert staff_alerts.staff_alert_attempt(**kwargs)

    monkeypatch.setattr(alerts.app, "send_task", send_task)
    return sent


@pytest.fixture
def upstream() -> Iterator[Upstream]:
    yield from serve_upstream()


@pytest.fixture
def http() -> Iterator[Http]:
    yield from quick_http()


@pytest.fixture
def staff(db: None) -> User:
    return make_staff("steve@example.test")


def failing(upstream: Upstream, source: Source) -> None:
    path = "/" + str(source.config["url"]).rsplit("/", 1)[1]
    upstream.routes[path] = Reply("upstream is down", 503)


def healthy(upstream: Upstream, source: Source) -> None:
    publish(upstream, source, csv_body([("pdq", random_pdq(), "", "")]))


def committed(capture: Callable[..., Any], action: Callable[[], Any]) -> Any:
    with capture(execute=True):
        return action()


def test_a_failing_source_alerts_once_and_once_more_when_it_recovers(
    upstream: Upstream,
    http: Http,
    staff: User,
    alice: User,
    receiver: Receiver,
    django_capture_on_commit_callbacks: Callable[..., Any],
) -> None:
    source = feed_source(upstream, name="IWF-style")
    failing(upstream, source)
    first = committed(django_capture_on_commit_callbacks, lambda: run(source, http))
    assert first.status == "failed"
    [incident] = SourceIncident.objects.filter(source=source)
    assert (incident.kind, incident.resolved_at, incident.failures) == ("failing", None, 1)
    assert incident.last_error.startswith(f"{first.error_code}: ")
    [opened] = mail.outbox
    assert opened.to == [staff.email]  # staff only: Alice is no staff member
    assert "IWF-style" in opened.subject and "imports fail" in opened.body
    assert receiver.events() == [("source.incident.opened", "failing", "IWF-style")]

    # It goes on failing: the same incident, no new e-mail or webhook.
    for _ in range(2):
        again = committed(django_capture_on_commit_callbacks, lambda: run(source, http))
        assert again.status == "failed"
    incident.refresh_from_db()
    assert (incident.resolved_at, incident.failures) == (None, 3)
    assert len(mail.outbox) == 1 and len(receiver.deliveries) == 1

    healthy(upstream, source)
    ok = committed(django_capture_on_commit_callbacks, lambda: run(source, http))
    assert ok.status == "succeeded"
    incident.refresh_from_db()
    assert incident.resolved_at is not None
    assert len(mail.outbox) == 2 and "recovered" in mail.outbox[1].subject
    assert receiver.events()[1:] == [("source.incident.resolved", "failing", "IWF-style")]

    # A success with nothing open announces nothing; a new failure is a new incident.
    committed(django_capture_on_commit_callbacks, lambda: run(source, http))
    assert len(mail.outbox) == 2
    failing(upstream, source)
    committed(django_capture_on_commit_callbacks, lambda: run(source, http))
    assert SourceIncident.objects.filter(source=source).count() == 2
    assert len(mail.outbox) == 3 and len(receiver.deliveries) == 3


def test_without_a_staff_webhook_staff_are_still_e_mailed(
    upstream: Upstream,
    http: Http,
    staff: User,
    _webhook_task_in_place: list[str],
    django_capture_on_commit_callbacks: Callable[..., Any],
) -> None:
    source = feed_source(upstream, name="No-hook")
    failing(upstream, source)
    committed(django_capture_on_commit_callbacks, lambda: run(source, http))
    assert len(mail.outbox) == 1
    assert _webhook_task_in_place == []


@pytest.mark.parametrize(
    ("schedule", "quiet_until", "overdue_at"),
    [
        # Every hour: due an hour after the last success, overdue after the hour's grace.
        ({"interval_minutes": 60}, dt.timedelta(minutes=119), dt.timedelta(minutes=121)),
        # Daily at 02:00 UTC (created at 16:30): due tomorrow 02:00, overdue from 03:00.
        (
            {"cron": "0 2 * * *"},
            dt.timedelta(hours=10, minutes=29),
            dt.timedelta(hours=10, minutes=31),
        ),
    ],
    ids=["interval", "cron"],
)
def test_an_overdue_source_opens_one_incident_until_it_runs(
    schedule: dict[str, Any],
    quiet_until: dt.timedelta,
    overdue_at: dt.timedelta,
    upstream: Upstream,
    http: Http,
    staff: User,
    receiver: Receiver,
    django_capture_on_commit_callbacks: Callable[..., Any],
) -> None:
    with time_machine.travel(START, tick=False) as clock:
        source = feed_source(upstream, name="Scheduled")
        source_services.source_update(source=source, actor=SYSTEM, **schedule)
        check = lambda: alerts.sources_overdue_check()  # noqa: E731
        clock.move_to(START + quiet_until)
        assert committed(django_capture_on_commit_callbacks, check) == (0, 0)
        clock.move_to(START + overdue_at)
        assert committed(django_capture_on_commit_callbacks, check) == (1, 0)
        assert committed(django_capture_on_commit_callbacks, check) == (0, 0)  # once
        [incident] = SourceIncident.objects.filter(source=source, resolved_at=None)
        assert incident.kind == "overdue"
        assert len(mail.outbox) == 1 and "overdue" in mail.outbox[0].subject
        assert receiver.events() == [("source.incident.opened", "overdue", "Scheduled")]

        healthy(upstream, source)
        assert committed(django_capture_on_commit_callbacks, lambda: run(source, http)).status == (
            "succeeded"
        )
        assert not SourceIncident.objects.filter(resolved_at=None).exists()
        assert receiver.events()[1:] == [("source.incident.resolved", "overdue", "Scheduled")]
        assert committed(django_capture_on_commit_callbacks, check) == (0, 0)
        assert len(mail.outbox) == 2


def test_an_overdue_incident_ends_when_the_source_is_disabled(
    upstream: Upstream, staff: User, django_capture_on_commit_callbacks: Callable[..., Any]
) -> None:
    with time_machine.travel(START, tick=False) as clock:
        source = feed_source(upstream, name="Paused")
        source_services.source_update(source=source, actor=SYSTEM, interval_minutes=30)
        clock.move_to(START + dt.timedelta(hours=3))
        check = lambda: alerts.sources_overdue_check()  # noqa: E731
        assert committed(django_capture_on_commit_callbacks, check) == (1, 0)
        source_services.source_update(source=source, actor=SYSTEM, enabled=False)
        assert committed(django_capture_on_commit_callbacks, check) == (0, 1)
        assert [m.subject for m in mail.outbox][1:] == ["[HashHub] Source Paused recovered"]


def test_a_source_run_only_by_hand_is_never_overdue(upstream: Upstream, staff: User) -> None:
    with time_machine.travel(START, tick=False) as clock:
        feed_source(upstream, name="By hand")
        clock.move_to(START + dt.timedelta(days=400))
        assert alerts.sources_overdue_check() == (0, 0)


def test_the_staff_health_page_lists_open_incidents(
    upstream: Upstream, http: Http, staff: User, alice: User
) -> None:
    source = feed_source(upstream, name="Failing-feed")
    failing(upstream, source)
    assert run(source, http).status == "failed"
    page = login(staff).get("/staff/health/")
    assert page.status_code == 200
    html = page.content.decode()
    [incident] = SourceIncident.objects.filter(source=source)
    assert f'id="incident-{incident.public_id}"' in html
    assert "Failing-feed" in html and "Imports fail" in html
    healthy(upstream, source)
    recovered = run(source, http)
    assert recovered.status == "succeeded", (recovered.error_code, recovered.error_message)
    html = login(staff).get("/staff/health/").content.decode()
    assert f'id="incident-{incident.public_id}"' not in html
    assert "No open incident" in html
    # Members never see it.
    assert login(alice).get("/staff/health/").status_code == 404


def test_a_long_error_is_kept_truncated(staff: User) -> None:
    source = source_services.source_create(name="Verbose", kind="feed", config={}, actor=SYSTEM)
    incident = alerts.source_run_failed(source=source, error="x" * 50_000)
    assert incident is not None and len(incident.last_error) == alerts.ERROR_MAX_CHARS
