"""Preservation holds: a detection (with its webhook delivery logs and its kept submitted hashes)
kept past retention while a hold is active (hub.retention names the periods).

Filing a report places one (reports.services, ``report_ref`` set) for
HASHHUB_PRESERVATION_HOLD_DAYS; an organisation can place one by hand on any of its detections,
and release a hold by hand. A hold ends by itself when ``until`` passes: the purges simply stop
skipping it. Every placement and release is audited (``preservation.held``,
``preservation.released``); the audit line never carries the platform's reference.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import Max, Q, QuerySet
from django.http import Http404
from django.utils import timezone
from django_scopes import scopes_disabled

from hub.audit import Actor, audit
from hub.errors import ServiceError
from hub.models import Organization
from lists.hashtypes import HashParseError, get_signal_type
from matching.models import Detection, PreservationHold

MAX_REASON = 500
# A hold by hand may run at most this long (a report's hold is HASHHUB_PRESERVATION_HOLD_DAYS).
MAX_HOLD_DAYS = 10 * 365


def hold_days_default() -> int:
    return settings.HASHHUB_PRESERVATION_HOLD_DAYS


def _active(now: datetime) -> Q:
    return Q(released_at__isnull=True, until__gt=now)


def holds_of(*, detection: Detection) -> list[PreservationHold]:
    """Every hold of ``detection``, newest first (active or not)."""
    return list(PreservationHold.objects.filter(detection=detection).order_by("-placed_at", "-id"))


def active_holds_of(*, detection: Detection, now: datetime | None = None) -> list[PreservationHold]:
    moment = now or timezone.now()
    return [hold for hold in holds_of(detection=detection) if hold.active_at(moment)]


def get_hold_for_org(*, org: Organization, public_id: str) -> PreservationHold:
    """One of the organisation's holds; the same 404 for a missing id and another org's."""
    hold = (
        PreservationHold.objects.filter(organization=org, public_id=public_id)
        .select_related("detection")
        .first()
    )
    if hold is None:
        raise Http404("No such hold.")
    return hold


def held_detection_ids(*, now: datetime | None = None) -> QuerySet[PreservationHold, int]:
    """The detection pks any active hold keeps (a subquery for the purges; no scope needed)."""
    moment = now or timezone.now()
    with scopes_disabled():
        return (
            PreservationHold.objects.filter(_active(moment))
            .values_list("detection_id", flat=True)
            .distinct()
        )


@dataclass(frozen=True)
class PreservationState:
    """Whether a detection is held now, and the latest ``until`` among its active holds."""

    held: bool
    until: datetime | None


NOT_HELD = PreservationState(held=False, until=None)


def preservation_states(
    *, detections: Iterable[Detection], now: datetime | None = None
) -> dict[int, PreservationState]:
    """The state of each of ``detections`` (by pk) in one query; absent ones are not held."""
    moment = now or timezone.now()
    pks = [detection.pk for detection in detections]
    if not pks:
        return {}
    with scopes_disabled():
        rows = (
            PreservationHold.objects.filter(_active(moment), detection_id__in=pks)
            .order_by()
            .values("detection_id")
            .annotate(latest=Max("until"))
        )
        return {
            row["detection_id"]: PreservationState(held=True, until=row["latest"]) for row in rows
        }


def preservation_state(*, detection: Detection, now: datetime | None = None) -> PreservationState:
    return preservation_states(detections=[detection], now=now).get(detection.pk, NOT_HELD)


def held_report_refs(*, now: datetime | None = None) -> set[str]:
    """The report public ids whose hold is active (reports.services skips them when purging)."""
    moment = now or timezone.now()
    with scopes_disabled():
        return set(
            PreservationHold.objects.filter(_active(moment))
            .exclude(report_ref="")
            .values_list("report_ref", flat=True)
        )


def held_submission_keys(*, now: datetime | None = None) -> set[tuple[int, str, bytes, str]]:
    """The kept submissions an active hold keeps, as (organization_id, signal_type, value,
    content_ref): the hashes the held detections submitted, of their organisation and with
    their content_ref. matching.kept.kept_purge skips these (a set: its cost does not grow
    with the number of holds the way one SQL condition per hash does)."""
    moment = now or timezone.now()
    keys: set[tuple[int, str, bytes, str]] = set()
    with scopes_disabled():
        held = Detection.objects.filter(pk__in=held_detection_ids(now=moment)).only(
            "organization_id", "content_ref", "submitted"
        )
        for detection in held.iterator(chunk_size=500):
            for item in detection.submitted or []:
                try:
                    signal_type = get_signal_type(str(item["type"]))
                    value = signal_type.parse(str(item["value"]))
                except (HashParseError, KeyError, TypeError):
                    continue  # a stored value that no longer parses keeps nothing
                keys.add(
                    (detection.organization_id, signal_type.name, value, detection.content_ref)
                )
    return keys


def _clean_reason(reason: str) -> str:
    reason = (reason or "").strip()
    if len(reason) > MAX_REASON:
        raise ServiceError("reason_too_long", f"A reason takes at most {MAX_REASON} characters.")
    return reason


@transaction.atomic
def hold_place(
    *,
    detection: Detection,
    actor: Actor,
    days: int | None = None,
    reason: str = "",
    report_ref: str = "",
) -> PreservationHold:
    """Hold ``detection`` for ``days`` (default HASHHUB_PRESERVATION_HOLD_DAYS) from now.

    A report's hold (``report_ref``) is placed once per report: filing again extends nothing.
    Raises ServiceError ``invalid_days`` (not 1..MAX_HOLD_DAYS) or ``reason_too_long``.
    """
    reason = _clean_reason(reason)
    days = hold_days_default() if days is None else days
    if not isinstance(days, int) or isinstance(days, bool) or not 1 <= days <= MAX_HOLD_DAYS:
        raise ServiceError(
            "invalid_days", f"A hold lasts from 1 to {MAX_HOLD_DAYS} days (a whole number)."
        )
    if report_ref:
        existing = PreservationHold.objects.filter(
            detection=detection, report_ref=report_ref, released_at__isnull=True
        ).first()
        if existing is not None:
            return existing
    now = timezone.now()
    hold = PreservationHold.objects.create(
        organization=detection.organization,
        detection=detection,
        report_ref=report_ref,
        reason=reason,
        placed_at=now,
        until=now + timedelta(days=days),
        placed_by=actor.user,
        placed_by_label=actor.label[:200],
    )
    audit(
        actor=actor,
        action="preservation.held",
        organization=detection.organization,
        target_type="detection",
        target_id=detection.public_id,
        metadata={
            "hold": hold.public_id,
            "until": hold.until.isoformat(),
            "days": days,
            **({"report": report_ref} if report_ref else {}),
        },
    )
    return hold


@transaction.atomic
def hold_release(*, hold: PreservationHold, actor: Actor) -> PreservationHold:
    """Release a hold placed by hand now (the purges stop skipping it). Raises ServiceError
    ``not_active`` for a hold already released or past its end, and ``report_hold`` for the
    hold of a filed report (it preserves evidence a hotline has; it ends only at ``until``)."""
    hold = PreservationHold.objects.select_for_update().get(pk=hold.pk)
    if not hold.active_at(timezone.now()):
        raise ServiceError("not_active", "This hold has already ended.", status=409)
    if hold.report_ref:
        raise ServiceError(
            "report_hold",
            f"This hold preserves what report {hold.report_ref} filed with a hotline; it cannot "
            f"be released by hand and ends on {hold.until:%Y-%m-%d}.",
            status=409,
        )
    hold.released_at = timezone.now()
    hold.released_by_label = actor.label[:200]
    hold.save(update_fields=["released_at", "released_by_label"])
    audit(
        actor=actor,
        action="preservation.released",
        organization=hold.organization,
        target_type="detection",
        target_id=hold.detection.public_id,
        metadata={
            "hold": hold.public_id,
            **({"report": hold.report_ref} if hold.report_ref else {}),
        },
    )
    return hold
