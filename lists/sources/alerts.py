"""Alerts without a monitoring stack: incidents of upstream sources that fail or are overdue.

A verified source whose import run fails opens a ``failing`` incident; an enabled, scheduled
source whose last success (or, never run, its creation) is older than its schedule allows plus
``HASHHUB_SOURCE_OVERDUE_GRACE_MINUTES`` opens an ``overdue`` one. The beat task
``OVERDUE_CHECK_TASK`` looks for overdue sources every few minutes; runs report their end here
(lists.sources.runs calls :func:`source_run_failed` and :func:`source_run_succeeded`).

An incident is announced once when it opens and once when it is resolved (the next successful
run; for an overdue one also the source being disabled or unscheduled): an e-mail to every
active hub staff user, and a call of the staff webhook (``HASHHUB_STAFF_WEBHOOK_URL``), signed
the way organisations' webhooks are. A failing source that keeps failing stays one incident
(at most one open incident of each kind per source, by a partial unique constraint), so it
alerts once, not at every run.

The webhook belongs to matching, which owns webhook signing and the SSRF-guarded delivery: it is
queued by task name (``STAFF_ALERT_TASK``) after commit, so lists never imports matching.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from django.conf import settings
from django.core.mail import send_mail
from django.db import IntegrityError, transaction
from django.db.models import F, QuerySet
from django.template.loader import render_to_string
from django.utils import timezone

from hub.audit import SYSTEM
from hub.celery import WEBHOOKS_QUEUE, app
from hub.lib.ids import new_public_id
from hub.models import User
from lists.models import Source, SourceIncident
from lists.sources.schedules import next_run_after
from lists.sources.services import audit_source

logger = logging.getLogger(__name__)

STAFF_ALERT_TASK = "matching.staff_alert"
"""The matching task that calls the staff webhook for one incident event (sent by name)."""
OVERDUE_CHECK_TASK = "lists.sources_overdue_check"
"""The beat task that opens and resolves ``overdue`` incidents (hub.settings schedules it)."""

EVENT_OPENED = "source.incident.opened"
EVENT_RESOLVED = "source.incident.resolved"
ERROR_MAX_CHARS = 1000


# --- selectors ----------------------------------------------------------------------------------


def incidents_open() -> QuerySet[SourceIncident]:
    """Every open incident, newest first, with its source (the staff health page)."""
    return SourceIncident.objects.filter(resolved_at__isnull=True).select_related("source")


def overdue_deadline(source: Source) -> datetime | None:
    """From when ``source`` counts as overdue: its next scheduled run after its last success (or
    its creation) plus the grace; None when it is disabled or runs only by hand."""
    if not source.enabled:
        return None
    due = next_run_after(source, source.last_success_at or source.created)
    if due is None:
        return None
    return due + timedelta(minutes=settings.HASHHUB_SOURCE_OVERDUE_GRACE_MINUTES)


# --- services -----------------------------------------------------------------------------------


def source_run_failed(*, source: Source, error: str) -> SourceIncident | None:
    """A run of ``source`` failed with ``error``: open its ``failing`` incident (announced after
    commit), or note the error on the one already open (no new alert). Returns a new incident."""
    return _open(source=source, kind=SourceIncident.Kind.FAILING, error=error)


def source_run_succeeded(*, source: Source) -> list[SourceIncident]:
    """A run of ``source`` succeeded: resolve its open incidents, each announced after commit."""
    return _resolve(incidents_open().filter(source=source))


def sources_overdue_check(*, now: datetime | None = None) -> tuple[int, int]:
    """Open an ``overdue`` incident for each source past its deadline that has none, and resolve
    those of sources no longer overdue (disabled, unscheduled, or run since). Each change is
    announced after commit. Returns (opened, resolved)."""
    now = now or timezone.now()
    opened = 0
    scheduled = Source.objects.filter(enabled=True).exclude(interval_minutes=0, cron="")
    overdue_ids = set()
    for source in scheduled:
        deadline = overdue_deadline(source)
        if deadline is None or now < deadline:
            continue
        overdue_ids.add(source.pk)
        behind = source.last_success_at or source.created
        since = f"no successful import since {behind:%Y-%m-%d %H:%M} UTC"
        if _open(source=source, kind=SourceIncident.Kind.OVERDUE, error=since) is not None:
            opened += 1
    stale = (
        incidents_open().filter(kind=SourceIncident.Kind.OVERDUE).exclude(source_id__in=overdue_ids)
    )
    return opened, len(_resolve(stale))


def _open(*, source: Source, kind: str, error: str) -> SourceIncident | None:
    error = error[:ERROR_MAX_CHARS]
    with transaction.atomic():
        try:
            with transaction.atomic():
                incident = SourceIncident.objects.create(
                    source=source, kind=kind, last_error=error, failures=1
                )
        except IntegrityError:
            # One is open already: this is the same incident going on, not a new alert.
            failed = 1 if kind == SourceIncident.Kind.FAILING else 0
            SourceIncident.objects.filter(
                source=source, kind=kind, resolved_at__isnull=True
            ).update(last_error=error, failures=F("failures") + failed)
            return None
        audit_source(
            source, "source.incident_opened", SYSTEM, incident=incident.public_id, kind=kind
        )
        _announce(incident, EVENT_OPENED)
    return incident


def _resolve(incidents: QuerySet[SourceIncident]) -> list[SourceIncident]:
    resolved = []
    with transaction.atomic():
        for incident in incidents.select_for_update(of=("self",)).select_related("source"):
            incident.resolved_at = timezone.now()
            incident.save(update_fields=["resolved_at"])
            audit_source(
                incident.source,
                "source.incident_resolved",
                SYSTEM,
                incident=incident.public_id,
                kind=incident.kind,
            )
            _announce(incident, EVENT_RESOLVED)
            resolved.append(incident)
    return resolved


def _announce(incident: SourceIncident, event: str) -> None:
    """After commit: e-mail staff and queue the staff webhook (matching delivers it)."""
    incident_id = incident.pk
    transaction.on_commit(lambda: _announce_now(incident_id, event))


def _announce_now(incident_id: int, event: str) -> None:
    incident = SourceIncident.objects.select_related("source").filter(pk=incident_id).first()
    if incident is None:
        return  # the source was deleted meanwhile
    try:
        _email_staff(incident, event)
    except Exception:  # an SMTP server away must not fail the import run that reported it
        logger.exception("could not e-mail staff about incident %s", incident.public_id)
    if settings.HASHHUB_STAFF_WEBHOOK_URL:
        app.send_task(
            STAFF_ALERT_TASK,
            kwargs={"incident_id": incident.pk, "event": event, "event_id": new_public_id()},
            queue=WEBHOOKS_QUEUE,
        )


def _email_staff(incident: SourceIncident, event: str) -> None:
    recipients = list(
        User.objects.filter(is_staff=True, is_active=True)
        .exclude(email="")
        .order_by("email")
        .values_list("email", flat=True)
    )
    if not recipients:
        return
    opened = event == EVENT_OPENED
    what = incident.get_kind_display().lower()
    subject = (
        f"[HashHub] Source {incident.source.name}: {what}"
        if opened
        else f"[HashHub] Source {incident.source.name} recovered"
    )
    body = render_to_string(
        "lists/sources/email/incident.txt",
        {"incident": incident, "opened": opened, "site_url": settings.SITE_URL},
    )
    send_mail(subject, body, settings.DEFAULT_FROM_EMAIL, recipients)


@app.task(name=OVERDUE_CHECK_TASK)
def overdue_check_task() -> tuple[int, int]:
    """Beat, every few minutes: :func:`sources_overdue_check`."""
    return sources_overdue_check()
