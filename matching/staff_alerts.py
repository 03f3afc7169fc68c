"""The staff webhook: source incidents (lists.sources.alerts) POSTed to HASHHUB_STAFF_WEBHOOK_URL.

Signed exactly like organisations' webhooks (``X-HashHub-Signature: v1=<HMAC-SHA256>`` over
``"<timestamp>.<body>"`` with ``HASHHUB_STAFF_WEBHOOK_SECRET``; matching.webhooks has the
receiver's check) and sent through the same address guard, pinned connection and deadline.
lists queues one delivery per incident event by the task's name, after commit; a failed attempt
is retried with the organisations' backoff, up to ``HASHHUB_WEBHOOK_MAX_ATTEMPTS``.

The body::

    {"id": "<event id>", "event": "source.incident.opened" | "source.incident.resolved",
     "created": "<ISO time>", "incident": {"id", "kind": "failing" | "overdue", "opened_at",
     "resolved_at", "error", "failures", "source": {"id", "name"}}}
"""

from __future__ import annotations

import json
import logging
from typing import Any

from django.conf import settings
from django.utils import timezone

from hub.celery import WEBHOOKS_QUEUE, app
from lists.models import SourceIncident
from lists.sources.alerts import EVENT_RESOLVED, STAFF_ALERT_TASK
from matching import webhooks

logger = logging.getLogger(__name__)


def staff_alert_payload(*, incident: SourceIncident, event: str, event_id: str) -> bytes:
    """The JSON body of one incident event."""
    moment = incident.resolved_at if event == EVENT_RESOLVED else incident.opened_at
    payload: dict[str, Any] = {
        "id": event_id,
        "event": event,
        "created": (moment or timezone.now()).isoformat(),
        "incident": {
            "id": incident.public_id,
            "kind": incident.kind,
            "opened_at": incident.opened_at.isoformat(),
            "resolved_at": incident.resolved_at.isoformat() if incident.resolved_at else None,
            "error": incident.last_error,
            "failures": incident.failures,
            "source": {"id": incident.source.public_id, "name": incident.source.name},
        },
    }
    return json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode()


def staff_alert_attempt(*, incident_id: int, event: str, event_id: str) -> bool:
    """One delivery attempt; True when finished (delivered, refused, or nothing to send)."""
    url, secret = settings.HASHHUB_STAFF_WEBHOOK_URL, settings.HASHHUB_STAFF_WEBHOOK_SECRET
    incident = SourceIncident.objects.select_related("source").filter(pk=incident_id).first()
    if not url or incident is None:
        return True
    body = staff_alert_payload(incident=incident, event=event, event_id=event_id)
    done, error = webhooks.signed_post(
        url=url, secret=secret, event=event, event_id=event_id, body=body
    )
    if error:
        logger.warning("staff webhook for incident %s: %s", incident.public_id, error)
    return done


@app.task(name=STAFF_ALERT_TASK, acks_late=True)
def staff_alert(*, incident_id: int, event: str, event_id: str, attempt: int = 1) -> None:
    """Deliver one incident event to the staff webhook; retried with backoff when it fails."""
    done = staff_alert_attempt(incident_id=incident_id, event=event, event_id=event_id)
    if not done and attempt < settings.HASHHUB_WEBHOOK_MAX_ATTEMPTS:
        staff_alert.apply_async(
            kwargs={
                "incident_id": incident_id,
                "event": event,
                "event_id": event_id,
                "attempt": attempt + 1,
            },
            countdown=webhooks.retry_delay_seconds(attempt),
            queue=WEBHOOKS_QUEUE,
        )
