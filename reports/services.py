"""The writes of reports: open, edit, file, acknowledge, the organisation's hotline profile, and
the retention purge. Each service runs in one transaction and writes one audit event; the state
changes also queue a webhook event (matching.webhooks.event_notify) after commit.

Only a detection confirmed as CSAM can be reported. A detection confirmed as SE is refused with a
sentence that says why: SE content is acted on (removed) by the platform but is not reported to
NCMEC or a hotline; HashHub keeps its hashes in the organisation's SE list.

The **package** (``Report.package``) is the copy of what the detection found, made when the
report is opened, so the report outlives the detection's retention. Its keys (version 1), which
the hotline profiles (reports.profiles) read:

- ``version``: 1;
- ``image_held``: always false (HashHub never holds the image) and ``preserve``: a sentence naming
  the platform's ``content_ref``, which the platform must preserve;
- ``detection``: ``id``, ``created`` (when the match request found it), ``requested_at`` (a
  retroactive detection: when the hash was submitted; else null), ``retroactive``, ``shadow``,
  ``content_ref``, ``submitted`` (``[{"type", "value"}]``), ``matches`` (as the match API
  answered: each result's ``matches`` carry the list's id, name, tier, category, contributor, the
  labels, distance and a verified source's ``record_id``; an anonymous list's contributor is
  already null), ``match_count``, ``match_total``, ``tiers``, ``categories``;
- ``confirmation``: ``category`` ("csam"), ``confirmed_at`` (the review's time), ``confirmed_by``
  (the analyst's e-mail, or the API key's label: the package is the organisation's own record and
  is only given to the organisation; webhooks never carry it) and ``note`` (the review note);
- ``opened_by``: who opened the report (the same kind of label).

The uploader reference is personal data: it is stored only as a Fernet token (hub.lib.secretbox,
the keys of stored source credentials), never audited (audit metadata says
``uploader_ref_set``), never sent in a webhook; only :func:`uploader_ref_of` decrypts it.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

from django.db import transaction
from django.db.models import Q
from django.utils import timezone
from django_scopes import scopes_disabled

from hub import retention
from hub.audit import Actor, audit
from hub.errors import ServiceError
from hub.lib import secretbox
from hub.models import Organization
from hub.purge import purge_due
from lists.models import Entry, Hash, HashList
from matching import preservation, webhooks
from matching.models import Detection
from matching.review import submitted_hashes
from reports import profiles, selectors
from reports.models import Report, ReportedEntry, ReportListing, ReportSettings
from sharing.selectors import sources_available_to

if TYPE_CHECKING:
    from matching.models import PreservationHold

PACKAGE_VERSION = 1
MAX_NOTES = 5000
MAX_UPLOADER_REF = 500
MAX_HOTLINE_REPORT_ID = 100
EDITABLE = ("incident_type", "uploader_ref", "notes", "file_viewed_by_esp")

EVENT_OPENED = "report.opened"
EVENT_FILED = "report.filed"
EVENT_ACKNOWLEDGED = "report.acknowledged"

SE_REFUSAL = (
    "This detection was confirmed as SE (sexually exploitative), not CSAM: SE content is removed "
    "by the platform but is not reported to NCMEC or a hotline, and HashHub keeps its hashes in "
    "your SE list. Confirm the detection as CSAM if that is what it is."
)


# --- checks -------------------------------------------------------------------------------------


def _text(value: Any, name: str, limit: int) -> str:
    if value is None:
        return ""
    if not isinstance(value, str):
        raise ServiceError(f"invalid_{name}", f"{name} must be a string.")
    value = value.strip()
    if len(value) > limit:
        raise ServiceError(
            f"{name}_too_long", f"{name} takes at most {limit:,} characters.", {"max": limit}
        )
    return value


def _incident_type(value: Any) -> str:
    if not isinstance(value, str) or value not in Report.IncidentType.values:
        raise ServiceError(
            "invalid_incident_type",
            f"incident_type must be one of: {', '.join(Report.IncidentType.values)}.",
            {"allowed": list(Report.IncidentType.values)},
        )
    return value


def _viewed(value: Any) -> bool | None:
    if value is not None and not isinstance(value, bool):
        raise ServiceError(
            "invalid_file_viewed_by_esp", "file_viewed_by_esp must be true, false or null."
        )
    return value


def _moment(value: Any, name: str, *, now: datetime, default: datetime) -> datetime:
    if value is None:
        return default
    if not isinstance(value, datetime) or timezone.is_naive(value):
        raise ServiceError(
            f"invalid_{name}", f"{name} must be a date and time with a time zone offset."
        )
    if value > now:
        raise ServiceError(f"{name}_in_future", f"{name} may not be in the future.")
    return value


def _sealed(uploader_ref: str) -> str:
    """The uploader reference as its Fernet token ("" for none)."""
    if not uploader_ref:
        return ""
    try:
        return secretbox.encrypt(uploader_ref)
    except secretbox.SecretBoxError as error:
        raise ServiceError(
            "encryption_unavailable",
            f"The uploader reference cannot be stored: {error.message}",
            status=503,
        ) from None


def _refuse_transition(report: Report, wanted: str) -> ServiceError:
    return ServiceError(
        "invalid_transition",
        f"This report is {report.state}; only a "
        + ("draft" if wanted == Report.State.FILED else "filed")
        + f" report can become {wanted}.",
        {"state": report.state, "wanted": wanted},
        status=409,
    )


# --- the package and the webhook section --------------------------------------------------------


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment is not None else None


def _package(detection: Detection, actor: Actor) -> dict[str, Any]:
    reviewer = detection.reviewed_by
    return {
        "version": PACKAGE_VERSION,
        "image_held": False,
        "preserve": (
            "HashHub holds no image. Preserve the content the platform knows as "
            f"“{detection.content_ref}”."
            if detection.content_ref
            else "HashHub holds no image. The match request named no content_ref: preserve the "
            "content by the platform's own reference."
        ),
        "detection": {
            "id": detection.public_id,
            "created": _iso(detection.created),
            "requested_at": _iso(detection.requested_at),
            "retroactive": detection.retroactive,
            "shadow": detection.shadow,
            "content_ref": detection.content_ref,
            "submitted": detection.submitted,
            "matches": detection.matches,
            "match_count": detection.match_count,
            "match_total": detection.match_total,
            "tiers": list(detection.tiers),
            "categories": list(detection.categories),
        },
        "confirmation": {
            "category": detection.confirmed_category,
            "confirmed_at": _iso(detection.reviewed_at),
            "confirmed_by": reviewer.email if reviewer is not None else None,
            "note": detection.review_note,
        },
        "opened_by": actor.label,
    }


def report_webhook_data(report: Report) -> dict[str, Any]:
    """The ``report`` section of a report's webhook event. Never the uploader reference, the
    notes or who acted."""
    return {
        "id": report.public_id,
        "state": report.state,
        "detection": report.detection_ref,
        "incident_type": report.incident_type,
        "hotline_report_id": report.hotline_report_id or None,
        "filed_at": _iso(report.filed_at),
        "acknowledged_at": _iso(report.acknowledged_at),
        "created": _iso(report.created),
    }


def _notify(report: Report, event: str, at: datetime) -> None:
    webhooks.event_notify(
        organization_id=report.organization_id,
        detection_id=report.detection_id,
        event=event,
        data=report_webhook_data(report),
        occurred_at=at,
    )


def _audit(report: Report, action: str, actor: Actor, **metadata: Any) -> None:
    audit(
        actor=actor,
        action=action,
        organization=report.organization,
        target_type="report",
        target_id=report.public_id,
        metadata={"detection": report.detection_ref, **metadata},
    )


# --- the reported entries -----------------------------------------------------------------------


def _reported_hashes(detection: Detection) -> list[Hash]:
    wanted = Q(pk__in=[])
    for submitted in submitted_hashes(detection):
        wanted |= Q(signal_type=submitted.signal_type, value=submitted.value)
    return list(Hash.objects.filter(wanted))


def _link_entries(report: Report, detection: Detection) -> tuple[int, int]:
    """ReportedEntry rows for the live entries of the organisation's own CSAM list that hold a
    hash the detection submitted, and a ReportListing (``before_report``) for each such hash a
    verified source the organisation may match already lists. Returns (entries, listings)."""
    org = report.organization
    hashes = _reported_hashes(detection)
    if not hashes:
        return 0, 0
    own = HashList.objects.filter(
        organization=org,
        is_default=True,
        category=HashList.Category.CSAM,
        deleted_at__isnull=True,
    ).first()
    if own is None:
        return 0, 0
    entries = list(
        Entry.objects.filter(hash_list=own, hash__in=hashes, removed_seq__isnull=True).only(
            "pk", "hash_id"
        )
    )
    reported = ReportedEntry.objects.bulk_create(
        [
            ReportedEntry(report=report, organization=org, entry=entry, hash_id=entry.hash_id)
            for entry in entries
        ]
    )
    sources = [source.pk for source in sources_available_to(org=org).values()]
    if not reported or not sources:
        return len(reported), 0
    by_hash = {row.hash_id: row for row in reported}
    # The verified sources' lists are the hub's own data (no organisation's scope holds them).
    with scopes_disabled():
        listed = list(
            Entry.objects.filter(
                hash_list__source_id__in=sources,
                hash_list__deleted_at__isnull=True,
                hash_id__in=list(by_hash),
                removed_seq__isnull=True,
            ).only("hash_id", "hash_list_id", "added_at")
        )
        ReportListing.objects.bulk_create(
            [
                ReportListing(
                    reported_entry=by_hash[entry.hash_id],
                    hash_list_id=entry.hash_list_id,
                    listed_at=entry.added_at,
                    before_report=True,
                )
                for entry in listed
            ],
            ignore_conflicts=True,
        )
    return len(reported), len(listed)


# --- services -----------------------------------------------------------------------------------


@transaction.atomic
def report_open(
    *,
    detection: Detection,
    actor: Actor,
    incident_type: str = Report.IncidentType.CHILD_PORNOGRAPHY,
    uploader_ref: str = "",
    notes: str = "",
    file_viewed_by_esp: bool | None = None,
) -> Report:
    """Open a draft report about ``detection``, which must be confirmed as CSAM.

    Copies what the detection found into the package, links the own CSAM list's entries of its
    hashes (and the verified listings they already have), stores the uploader reference
    encrypted. Audited (``report.opened``, never with the uploader reference); queues a
    ``report.opened`` webhook event after commit.

    Refused (ServiceError): ``not_confirmed`` and ``confirmed_as_se`` (409, with why),
    ``already_reported`` (409, ``details.report``), ``invalid_incident_type``,
    ``notes_too_long``, ``uploader_ref_too_long``, ``invalid_file_viewed_by_esp``,
    ``encryption_unavailable`` (503: no key to store the uploader reference with).
    """
    incident_type = _incident_type(incident_type)
    uploader_ref = _text(uploader_ref, "uploader_ref", MAX_UPLOADER_REF)
    notes = _text(notes, "notes", MAX_NOTES)
    file_viewed_by_esp = _viewed(file_viewed_by_esp)
    # Locked until commit: two analysts opening a report on it at once make one report.
    detection = (
        Detection.objects.select_for_update(of=("self",))
        .select_related("organization", "reviewed_by")
        .get(pk=detection.pk)
    )
    if detection.status != Detection.Status.CONFIRMED:
        raise ServiceError(
            "not_confirmed", "Confirm the detection as CSAM before reporting it.", status=409
        )
    if detection.confirmed_category != HashList.Category.CSAM:
        raise ServiceError("confirmed_as_se", SE_REFUSAL, status=409)
    existing = selectors.report_for_detection(detection=detection)
    if existing is not None:
        raise ServiceError(
            "already_reported",
            f"This detection is reported already (report {existing.public_id}).",
            {"report": existing.public_id},
            status=409,
        )
    now = timezone.now()
    report = Report.objects.create(
        organization=detection.organization,
        detection=detection,
        detection_ref=detection.public_id,
        incident_type=incident_type,
        content_ref=detection.content_ref,
        uploader_ref_token=_sealed(uploader_ref),
        notes=notes,
        file_viewed_by_esp=file_viewed_by_esp,
        package=_package(detection, actor),
        created=now,
        created_by=actor.user,
        created_by_label=actor.label[:200],
        updated=now,
    )
    entries, listed = _link_entries(report, detection)
    _audit(
        report,
        "report.opened",
        actor,
        incident_type=incident_type,
        uploader_ref_set=bool(uploader_ref),
        entries=entries,
        listed_before=listed,
    )
    _notify(report, EVENT_OPENED, now)
    return report


def _locked(report: Report) -> Report:
    return (
        Report.objects.select_for_update(of=("self",))
        .select_related("organization")
        .get(pk=report.pk)
    )


@transaction.atomic
def report_update(*, report: Report, actor: Actor, **changes: Any) -> Report:
    """Change a draft's ``incident_type``, ``uploader_ref``, ``notes`` or ``file_viewed_by_esp``.

    Audited (``report.updated``, naming the fields changed, never the uploader reference's value);
    nothing changed is no event. Refused: ``report_not_draft`` (409), ``unknown_field``, and the
    checks of :func:`report_open`.
    """
    unknown = sorted(set(changes) - set(EDITABLE))
    if unknown:
        raise ServiceError(
            "unknown_field",
            f"A report's {', '.join(EDITABLE)} can be changed; not {', '.join(unknown)}.",
            {"fields": unknown},
        )
    cleaned: dict[str, Any] = {}
    if "incident_type" in changes:
        cleaned["incident_type"] = _incident_type(changes["incident_type"])
    if "notes" in changes:
        cleaned["notes"] = _text(changes["notes"], "notes", MAX_NOTES)
    if "file_viewed_by_esp" in changes:
        cleaned["file_viewed_by_esp"] = _viewed(changes["file_viewed_by_esp"])
    uploader_ref = None
    if "uploader_ref" in changes:
        uploader_ref = _text(changes["uploader_ref"], "uploader_ref", MAX_UPLOADER_REF)
    report = _locked(report)
    if report.state != Report.State.DRAFT:
        raise ServiceError(
            "report_not_draft",
            f"This report is {report.state}: only a draft can be changed.",
            {"state": report.state},
            status=409,
        )
    changed = [name for name, value in cleaned.items() if getattr(report, name) != value]
    for name in changed:
        setattr(report, name, cleaned[name])
    if uploader_ref is not None and uploader_ref != uploader_ref_of(report=report):
        report.uploader_ref_token = _sealed(uploader_ref)
        changed.append("uploader_ref")
    if not changed:
        return report
    report.updated = timezone.now()
    fields = sorted(changed)
    report.save(
        update_fields=[
            "updated",
            *("uploader_ref_token" if name == "uploader_ref" else name for name in fields),
        ]
    )
    _audit(report, "report.updated", actor, fields=fields)
    return report


@transaction.atomic
def report_file(
    *,
    report: Report,
    actor: Actor,
    hotline_report_id: str,
    filed_at: datetime | None = None,
) -> Report:
    """Record that the draft was filed with the hotline: its report id there and the date.

    Places a preservation hold on the detection (matching.preservation.hold_place, for
    HASHHUB_PRESERVATION_HOLD_DAYS) when it still exists, which also keeps this report from
    the retention purge. Audited (``report.filed``); queues a ``report.filed`` webhook event.
    Refused: ``invalid_transition`` and ``no_longer_confirmed`` (409),
    ``invalid_hotline_report_id``, ``invalid_filed_at``, ``filed_at_in_future``.
    """
    if (
        not isinstance(hotline_report_id, str)
        or not 1 <= len(hotline_report_id.strip()) <= MAX_HOTLINE_REPORT_ID
        or not hotline_report_id.strip().isprintable()
    ):
        raise ServiceError(
            "invalid_hotline_report_id",
            f"Give the hotline's report id: 1 to {MAX_HOTLINE_REPORT_ID} printable characters.",
        )
    hotline_report_id = hotline_report_id.strip()
    now = timezone.now()
    filed_at = _moment(filed_at, "filed_at", now=now, default=now)
    report = _locked(report)
    if report.state != Report.State.DRAFT:
        raise _refuse_transition(report, Report.State.FILED)
    # The detection may have been purged since (a draft does not hold it): then no hold.
    detection = (
        Detection.objects.filter(pk=report.detection_id).first()
        if report.detection_id is not None
        else None
    )
    if detection is not None and (
        detection.status != Detection.Status.CONFIRMED
        or detection.confirmed_category != HashList.Category.CSAM
    ):
        raise ServiceError(
            "no_longer_confirmed",
            "The detection was reviewed again and is no longer confirmed as CSAM: confirm "
            "it as CSAM again before filing this report.",
            status=409,
        )
    report.state = Report.State.FILED
    report.hotline_report_id = hotline_report_id
    report.filed_at = filed_at
    report.updated = now
    report.save(update_fields=["state", "hotline_report_id", "filed_at", "updated"])
    hold = None
    if detection is not None:
        hold = preservation.hold_place(
            detection=detection, actor=actor, report_ref=report.public_id
        )
    _audit(
        report,
        "report.filed",
        actor,
        hotline_report_id=hotline_report_id,
        filed_at=filed_at.isoformat(),
        hold=hold.public_id if hold is not None else None,
    )
    _notify(report, EVENT_FILED, now)
    return report


@transaction.atomic
def report_acknowledge(
    *, report: Report, actor: Actor, acknowledged_at: datetime | None = None
) -> Report:
    """Record that the hotline acknowledged the filed report. Audited
    (``report.acknowledged``); queues a ``report.acknowledged`` webhook event. Refused:
    ``invalid_transition`` (409), ``invalid_acknowledged_at``, ``acknowledged_at_in_future``,
    ``acknowledged_before_filing``."""
    now = timezone.now()
    acknowledged_at = _moment(acknowledged_at, "acknowledged_at", now=now, default=now)
    report = _locked(report)
    if report.state != Report.State.FILED:
        raise _refuse_transition(report, Report.State.ACKNOWLEDGED)
    if report.filed_at is not None and acknowledged_at < report.filed_at:
        raise ServiceError(
            "acknowledged_before_filing",
            f"The report was filed on {report.filed_at.isoformat()}: it cannot have been "
            "acknowledged before.",
        )
    report.state = Report.State.ACKNOWLEDGED
    report.acknowledged_at = acknowledged_at
    report.updated = now
    report.save(update_fields=["state", "acknowledged_at", "updated"])
    _audit(report, "report.acknowledged", actor, acknowledged_at=acknowledged_at.isoformat())
    _notify(report, EVENT_ACKNOWLEDGED, now)
    return report


def uploader_ref_of(*, report: Report) -> str:
    """The uploader reference, decrypted ("" when none was given). Only for the organisation's
    own reads (its API key with scope ``reports``, its members' pages, its download). Raises
    ServiceError ``encryption_unavailable`` (503) when no configured key opens it."""
    if not report.uploader_ref_token:
        return ""
    try:
        return secretbox.decrypt(report.uploader_ref_token)
    except secretbox.SecretBoxError as error:
        raise ServiceError(
            "encryption_unavailable",
            f"The uploader reference cannot be read: {error.message}",
            status=503,
        ) from None


def report_hold(*, report: Report, now: datetime | None = None) -> PreservationHold | None:
    """The active preservation hold the filing of ``report`` placed, or None."""
    if report.detection_id is None:
        return None
    detection = Detection.objects.filter(pk=report.detection_id).first()
    if detection is None:
        return None
    held = [
        hold
        for hold in preservation.active_holds_of(detection=detection, now=now)
        if hold.report_ref == report.public_id
    ]
    return max(held, key=lambda hold: hold.until, default=None)


@transaction.atomic
def report_downloaded(*, report: Report, actor: Actor, profile: str) -> None:
    """Audit a download of the report's package (a sensitive read: it carries the uploader
    reference)."""
    _audit(report, "report.downloaded", actor, profile=profile)


# --- the organisation's hotline profile ---------------------------------------------------------


def report_settings_of(*, org: Organization) -> ReportSettings:
    """The organisation's reporting settings; an unsaved default (``generic``) when none."""
    found = ReportSettings.objects.filter(organization=org).first()
    return found or ReportSettings(organization=org, profile=profiles.DEFAULT_PROFILE)


@transaction.atomic
def report_settings_set(*, org: Organization, profile: str, actor: Actor) -> ReportSettings:
    """Choose the hotline profile the organisation's downloads follow. Audited
    (``report.profile_set``). Refused: ``unknown_profile`` (reports.profiles.PROFILES)."""
    if not isinstance(profile, str):
        raise ServiceError("unknown_profile", "profile must be a profile's name.")
    profiles.profile_get(profile)
    previous = report_settings_of(org=org).profile
    settings_row, _ = ReportSettings.objects.update_or_create(
        organization=org,
        defaults={"profile": profile, "updated": timezone.now(), "updated_by": actor.user},
    )
    audit(
        actor=actor,
        action="report.profile_set",
        organization=org,
        target_type="organization",
        target_id=org.slug,
        metadata={"profile": profile, "previous": previous},
    )
    return settings_row


# --- retention ----------------------------------------------------------------------------------

PURGE_BATCH = 1000


def reports_purge(*, now: datetime | None = None) -> int:
    """Delete every organisation's reports not changed for HASHHUB_REPORT_RETENTION_DAYS
    (hub.retention), except those an active preservation hold keeps (a filed report's hold).

    Runs without a tenant scope (from beat), in batches, each in its own transaction with one
    system audit event (``reports.purged``) per organisation it touched. Their reported entries
    and listings go with them. Returns how many reports were deleted.
    """
    moment = now or timezone.now()
    period = retention.reports()
    cutoff = moment - period.delta
    with scopes_disabled():  # from beat: every organisation's rows
        due = Report.objects.filter(updated__lt=cutoff).exclude(
            public_id__in=preservation.held_report_refs(now=moment)
        )
        return purge_due(
            due,
            action="reports.purged",
            target_type="report",
            cutoff=cutoff,
            period=period,
            batch=PURGE_BATCH,
        )


def review_guard(detection: Detection, status: str, category: str) -> None:
    """Registered with matching.review (reports.apps): once a report about ``detection`` is
    filed, its review can no longer change (a filed report rests on "confirmed as CSAM").
    Confirming it as CSAM again is allowed; a draft does not stop a review (it then cannot be
    filed until the detection is confirmed as CSAM again)."""
    if status == Detection.Status.CONFIRMED and category == "csam":
        return
    filed = (
        Report.objects.filter(detection=detection)
        .exclude(state=Report.State.DRAFT)
        .values_list("public_id", flat=True)
        .first()
    )
    if filed is not None:
        raise ServiceError(
            "reported",
            f"This detection was reported to a hotline (report {filed}); a filed report rests "
            "on its confirmation as CSAM, so its review can no longer change.",
            status=409,
            details={"report": filed},
        )
