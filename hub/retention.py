"""The one retention policy: how long each kind of record lives, and what audit events may carry.

Every purge reads its period here (never a setting of its own), and the audit log's one writer
(hub.audit.audit) applies :data:`AUDIT_DIGESTED` and :data:`AUDIT_FORBIDDEN` to every event.

- detections: ``HASHHUB_DETECTION_RETENTION_DAYS`` after they were made
  (matching.review.detections_purge);
- kept submitted hashes: the organisation's ``retroactive_days`` in its match policy
  (matching.kept.kept_purge);
- webhook delivery logs: ``HASHHUB_WEBHOOK_DELIVERY_RETENTION_DAYS`` after the attempt
  (matching.webhooks.deliveries_purge);
- report records: ``HASHHUB_REPORT_RETENTION_DAYS`` after their last change
  (reports.services.reports_purge);
- audit events: for ever (append-only: the database refuses UPDATE and DELETE).

A **preservation hold** (matching.preservation: placed by filing a report, for
``HASHHUB_PRESERVATION_HOLD_DAYS``, or by hand) keeps its detection, the detection's delivery
logs, its kept submitted hashes and its report from every purge above while it is active.

Since the audit log outlives every record it names, an event never carries the platform's
``content_ref`` (which outlives nothing but its detection): the writer replaces it with
``content_ref_digest``, a keyed hash (:func:`audit_digest`) that proves which reference an event
was about to whoever holds the reference and the hub's key, and tells nobody else anything. Personal
data an organisation enters (the uploader reference of a report) may not be audited at all.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.utils.crypto import salted_hmac

AUDIT_DIGEST_SALT = "hashhub.audit.digest"
# Keys an audit event's metadata may carry only as a keyed digest, at any depth: key -> new key.
AUDIT_DIGESTED: dict[str, str] = {"content_ref": "content_ref_digest"}
# Keys an audit event's metadata may never carry, at any depth (a programming error: raises).
AUDIT_FORBIDDEN: frozenset[str] = frozenset({"uploader_ref", "uploader"})


@dataclass(frozen=True)
class Period:
    """One kind of record, how long it lives, and the setting that says so."""

    record: str
    days: int | None  # None: decided per organisation (its match policy), or never purged
    setting: str
    note: str

    @property
    def delta(self) -> timedelta:
        if self.days is None:
            raise ValueError(f"{self.record} has no hub-wide period")
        return timedelta(days=self.days)


def detections() -> Period:
    return Period(
        "detections",
        settings.HASHHUB_DETECTION_RETENTION_DAYS,
        "HASHHUB_DETECTION_RETENTION_DAYS",
        "after the match request that made them",
    )


def kept_submissions() -> Period:
    return Period(
        "kept submitted hashes",
        None,
        "retroactive_days (match policy)",
        "as many days as the organisation's match policy keeps them for retroactive matching",
    )


def webhook_deliveries() -> Period:
    return Period(
        "webhook delivery logs",
        settings.HASHHUB_WEBHOOK_DELIVERY_RETENTION_DAYS,
        "HASHHUB_WEBHOOK_DELIVERY_RETENTION_DAYS",
        "after the attempt (and with their detection, whichever comes first)",
    )


def reports() -> Period:
    return Period(
        "report records",
        settings.HASHHUB_REPORT_RETENTION_DAYS,
        "HASHHUB_REPORT_RETENTION_DAYS",
        "after the report's last change",
    )


def preservation_hold() -> Period:
    return Period(
        "preservation hold",
        settings.HASHHUB_PRESERVATION_HOLD_DAYS,
        "HASHHUB_PRESERVATION_HOLD_DAYS",
        "from the filing of a report (or a hold placed by hand); purges skip what it holds",
    )


def audit_events() -> Period:
    return Period("audit events", None, "", "for ever; they carry no content_ref, only its digest")


def policy() -> list[Period]:
    """Every period, in the order the README and the retention page list them."""
    return [
        detections(),
        kept_submissions(),
        webhook_deliveries(),
        reports(),
        preservation_hold(),
        audit_events(),
    ]


def audit_digest(value: str) -> str:
    """A keyed digest of ``value`` (HMAC-SHA256 under the hub's SECRET_KEY): 32 hex digits.

    Equal values give equal digests, so an auditor holding the reference can find its events;
    without the key it cannot be reversed or guessed from a list of references."""
    return salted_hmac(AUDIT_DIGEST_SALT, value, algorithm="sha256").hexdigest()[:32]


def audit_metadata(metadata: Any) -> Any:
    """``metadata`` as an audit event may carry it: each :data:`AUDIT_DIGESTED` key replaced by
    its digest (an empty value by ""), at any depth. Raises ValueError for a key of
    :data:`AUDIT_FORBIDDEN`."""
    if isinstance(metadata, dict):
        cleaned: dict[str, Any] = {}
        for key, value in metadata.items():
            if key in AUDIT_FORBIDDEN:
                raise ValueError(f"an audit event may not carry {key!r} (hub.retention)")
            if key in AUDIT_DIGESTED:
                cleaned[AUDIT_DIGESTED[key]] = audit_digest(str(value)) if value else ""
            else:
                cleaned[key] = audit_metadata(value)
        return cleaned
    if isinstance(metadata, list | tuple):
        return [audit_metadata(item) for item in metadata]
    return metadata
