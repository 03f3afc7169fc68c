"""Reviewing detections: the queue and its filters, confirm / false positive / dismiss, the allow
list, the detections-per-day figures and the retention purge.

Selectors read through the caller's organisation (another organisation's detection is the same
404 as a missing one); every service runs in one transaction and writes one audit event.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta

from django.db import transaction
from django.db.models import Count, Q, QuerySet
from django.db.models.functions import TruncDate
from django.http import Http404
from django.utils import timezone
from django_scopes import scopes_disabled

from hub import retention
from hub.audit import Actor, audit
from hub.errors import ServiceError
from hub.lib.cursors import time_cursor_decode, time_cursor_encode
from hub.models import Organization
from hub.purge import purge_due
from lists.hashtypes import HashParseError, get_signal_type
from lists.models import HashList
from lists.services import EntryInput, entry_add
from matching import preservation, webhooks
from matching.models import AllowedHash, Detection

# The tiers of a match, in the order the chart stacks them (bottom first) and the queue lists them.
TIERS = ("verified", "own", "community")
MAX_NOTE = 2000

# Checks a higher app registers (reports, from its AppConfig.ready) so that a review cannot undo
# what it relies on: each gets the locked detection, the status and category the review would
# set, and raises ServiceError to refuse. matching never imports the app that registers them.
ReviewGuard = Callable[[Detection, str, str], None]
_REVIEW_GUARDS: list[ReviewGuard] = []


def review_guard_register(guard: ReviewGuard) -> None:
    """Register ``guard`` (once; registering it again changes nothing)."""
    if guard not in _REVIEW_GUARDS:
        _REVIEW_GUARDS.append(guard)


def _review_allowed(detection: Detection, status: str, category: str = "") -> None:
    for guard in _REVIEW_GUARDS:
        guard(detection, status, category)


# --- selectors --------------------------------------------------------------------------------


def detections_of(
    *,
    org: Organization,
    status: str = "",
    tier: str = "",
    category: str = "",
    shadow: bool = False,
    retracted: bool | None = None,
    retroactive: bool | None = None,
) -> QuerySet[Detection]:
    """The organisation's detections, newest first, optionally narrowed by status, tier, category.

    A detection has a tier (category) when any of its matches does, so one detection may show
    under several tier filters. Shadow detections (recorded under shadow mode) are left out
    unless ``shadow`` asks for them, and then they are all it returns; ``retracted`` and
    ``retroactive`` keep only the detections that are (True) or are not (False) so.
    """
    detections = Detection.objects.filter(organization=org, shadow=shadow).select_related(
        "reviewed_by"
    )
    if retracted is not None:
        detections = detections.filter(retracted_at__isnull=not retracted)
    if retroactive is not None:
        detections = detections.filter(retroactive=retroactive)
    if status:
        detections = detections.filter(status=status)
    if tier:
        detections = detections.filter(tiers__contains=[tier])
    if category:
        detections = detections.filter(categories__contains=[category])
    return detections.order_by("-created", "-id")


def get_detection_for_org(*, org: Organization, public_id: str) -> Detection:
    """One of the organisation's detections; the same 404 for a missing id and someone else's."""
    detection = (
        Detection.objects.filter(organization=org, public_id=public_id)
        .select_related("organization", "reviewed_by")
        .first()
    )
    if detection is None:
        raise Http404("No such detection.")
    return detection


def detection_neighbours(*, detection: Detection) -> tuple[Detection | None, Detection | None]:
    """(newer, older): the detections just before and after ``detection`` in its queue (the
    organisation's, newest first; the shadow queue for a shadow detection)."""
    queue = Detection.objects.filter(
        organization_id=detection.organization_id, shadow=detection.shadow
    ).only("public_id", "created")
    newer = (
        queue.filter(
            Q(created__gt=detection.created) | Q(created=detection.created, pk__gt=detection.pk)
        )
        .order_by("created", "id")
        .first()
    )
    older = (
        queue.filter(
            Q(created__lt=detection.created) | Q(created=detection.created, pk__lt=detection.pk)
        )
        .order_by("-created", "-id")
        .first()
    )
    return newer, older


def detection_counts(*, org: Organization) -> dict[str, int]:
    """The dashboard's figures: detections waiting for review (``new``, shadow ones left out),
    retracted ones (``retracted``: every entry they matched through has gone) and those
    recorded under shadow mode (``shadow``)."""
    counted = Detection.objects.filter(organization=org).aggregate(
        new=Count("id", filter=Q(shadow=False, status=Detection.Status.NEW)),
        retracted=Count("id", filter=Q(shadow=False, retracted_at__isnull=False)),
        shadow=Count("id", filter=Q(shadow=True)),
    )
    return {name: int(value or 0) for name, value in counted.items()}


# The API's pages of detections (GET /api/v1/detections).
PAGE_SIZE = 50
MAX_PAGE_SIZE = 200


@dataclass(frozen=True)
class DetectionPage:
    detections: list[Detection]
    next_cursor: str | None


def _encode_cursor(detection: Detection) -> str:
    return time_cursor_encode(detection.created, detection.public_id)


def _decode_cursor(cursor: str) -> tuple[datetime, str]:
    return time_cursor_decode(cursor)


def detections_page(
    *,
    org: Organization,
    status: str = "",
    tier: str = "",
    category: str = "",
    cursor: str = "",
    limit: int = PAGE_SIZE,
    shadow: bool = False,
    retracted: bool | None = None,
    retroactive: bool | None = None,
) -> DetectionPage:
    """A page of the organisation's detections, newest first, filtered as the review queue is.

    Keyset paging on (created, public id), so a page stays right while detections arrive.
    Raises ServiceError ``bad_cursor`` for a cursor this hub did not give out.
    """
    limit = max(1, min(limit, MAX_PAGE_SIZE))
    found = detections_of(
        org=org,
        status=status,
        tier=tier,
        category=category,
        shadow=shadow,
        retracted=retracted,
        retroactive=retroactive,
    ).order_by("-created", "-public_id")
    if cursor:
        created, public_id = _decode_cursor(cursor)
        found = found.filter(Q(created__lt=created) | Q(created=created, public_id__lt=public_id))
    rows = list(found[: limit + 1])
    next_cursor = _encode_cursor(rows[limit - 1]) if len(rows) > limit else None
    return DetectionPage(rows[:limit], next_cursor)


def allow_list_of(*, org: Organization) -> QuerySet[AllowedHash]:
    """The organisation's allow list (hashes judged false positives), newest first."""
    return (
        AllowedHash.objects.filter(organization=org)
        .select_related("detection")
        .order_by("-created", "-id")
    )


def get_allowed_for_org(*, org: Organization, public_id: str) -> AllowedHash:
    """One allow-list row of the organisation; 404 for a missing id and someone else's alike."""
    allowed = AllowedHash.objects.filter(organization=org, public_id=public_id).first()
    if allowed is None:
        raise Http404("No such allowed hash.")
    return allowed


@dataclass(frozen=True)
class DayCount:
    """Detections of one day, counted once per tier each has (so tiers may sum past ``total``)."""

    day: date
    total: int
    verified: int
    own: int
    community: int

    def by_tier(self) -> dict[str, int]:
        return {tier: getattr(self, tier) for tier in TIERS}


def detections_per_day(
    *, org: Organization, days: int = 30, today: date | None = None
) -> list[DayCount]:
    """Every day of the last ``days`` (today included, oldest first), zero-filled.

    Days are calendar days in the hub's time zone (settings.TIME_ZONE).
    """
    today = today or timezone.localdate()
    first = today - timedelta(days=days - 1)
    tz = timezone.get_current_timezone()
    start = datetime.combine(first, time.min, tzinfo=tz)
    end = datetime.combine(today + timedelta(days=1), time.min, tzinfo=tz)
    per_tier = {tier: Count("id", filter=Q(tiers__contains=[tier])) for tier in TIERS}
    rows = (
        Detection.objects.filter(organization=org, created__gte=start, created__lt=end)
        .annotate(day=TruncDate("created", tzinfo=tz))
        .values("day")
        .annotate(total=Count("id"), **per_tier)
        .order_by("day")
    )
    found = {row["day"]: row for row in rows}
    result = []
    for offset in range(days):
        day = first + timedelta(days=offset)
        row = found.get(day, {})
        result.append(
            DayCount(
                day=day,
                total=row.get("total", 0),
                verified=row.get("verified", 0),
                own=row.get("own", 0),
                community=row.get("community", 0),
            )
        )
    return result


@dataclass(frozen=True)
class SubmittedHash:
    """A submitted hash of a detection, canonical (``value`` is bytes, ``text`` its text form)."""

    signal_type: str
    value: bytes
    text: str


def submitted_hashes(detection: Detection) -> list[SubmittedHash]:
    """The detection's submitted hashes that parse, each once, in the order they were sent."""
    seen: dict[tuple[str, bytes], SubmittedHash] = {}
    for item in detection.submitted or []:
        try:
            signal_type = get_signal_type(item.get("type"))
            value = signal_type.parse(item.get("value"))
        except (HashParseError, AttributeError):
            # A malformed item was answered with a per-item error and matched nothing.
            continue
        key = (signal_type.name, value)
        seen.setdefault(key, SubmittedHash(signal_type.name, value, signal_type.to_text(value)))
    return list(seen.values())


# --- services ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class ConfirmResult:
    hash_list: HashList
    added: int
    already_present: int
    allow_list_removed: int
    # Submitted hashes the list refused (a degenerate PDQ, say): type, value, code, message.
    refused: tuple[dict[str, str], ...] = ()


def _clean_note(note: str) -> str:
    note = (note or "").strip()
    if len(note) > MAX_NOTE:
        raise ServiceError("note_too_long", f"A note takes at most {MAX_NOTE} characters.")
    return note


def _locked(detection: Detection) -> Detection:
    """The detection's row, locked until commit, so two reviewers do not interleave."""
    return Detection.objects.select_for_update().get(pk=detection.pk)


def _mark_reviewed(
    detection: Detection, status: str, note: str, actor: Actor, *, category: str = ""
) -> None:
    """Record the review; ``category`` is the confirmed list's, "" for any other outcome."""
    detection.status = status
    detection.reviewed_by = actor.user
    detection.reviewed_at = timezone.now()
    detection.review_note = note
    detection.confirmed_category = category if status == Detection.Status.CONFIRMED else ""
    detection.save(
        update_fields=["status", "reviewed_by", "reviewed_at", "review_note", "confirmed_category"]
    )


def _audit_review(
    detection: Detection, action: str, actor: Actor, previous: str, **metadata: object
) -> None:
    audit(
        actor=actor,
        action=action,
        organization=detection.organization,
        target_type="detection",
        target_id=detection.public_id,
        metadata={"previous_status": previous, **metadata},
    )


def confirm_category(detection: Detection, category: str = "") -> str:
    """The category a confirmation files under: the one asked for, else the matches' own.

    Raises ServiceError ``bad_category``, or ``category_required`` when the matches disagree.
    """
    if category:
        if category not in HashList.Category.values:
            raise ServiceError("bad_category", "Choose CSAM or SE.")
        return category
    categories = set(detection.categories)
    if len(categories) != 1:
        raise ServiceError(
            "category_required",
            "The matches are not all of one category: choose the CSAM or the SE list.",
        )
    return categories.pop()


@transaction.atomic
def detection_confirm(
    *, detection: Detection, category: str = "", note: str = "", actor: Actor
) -> ConfirmResult:
    """Confirm a detection: add its submitted hashes to the organisation's own default list.

    The list is the organisation's default CSAM or SE list (``category``, by default the matches'
    category when they agree). Adding is idempotent, so confirming twice adds nothing twice. The
    same hashes leave the allow list (a confirmed hash can no longer be a false positive). Sets
    the status to confirmed; writes an audit event (and ``entry_add`` its own). A hash the list
    refuses (a degenerate PDQ: it would match unrelated pictures) is not added, and the result
    names it in ``refused``.
    """
    note = _clean_note(note)
    chosen = confirm_category(detection, category)
    detection = _locked(detection)
    _review_allowed(detection, Detection.Status.CONFIRMED, chosen)
    org = detection.organization
    hash_list = HashList.objects.filter(
        organization=org, is_default=True, category=chosen, deleted_at__isnull=True
    ).first()
    if hash_list is None:
        raise ServiceError(
            "no_default_list", f"This organisation has no own {chosen.upper()} list.", status=409
        )
    hashes = submitted_hashes(detection)
    entry_note = f"Confirmed from detection {detection.public_id}"
    result = entry_add(
        hash_list=hash_list,
        items=[EntryInput(h.signal_type, h.text, note=entry_note) for h in hashes],
        actor=actor,
    )
    refused = tuple(
        {
            "type": hashes[error.index].signal_type,
            "value": hashes[error.index].text,
            "code": error.code,
            "message": error.message,
        }
        for error in result.errors
    )
    allowed = _allowed_rows(org, hashes)
    allow_list_removed = allowed.count()
    allowed.delete()
    previous = detection.status
    _mark_reviewed(detection, Detection.Status.CONFIRMED, note, actor, category=chosen)
    _audit_review(
        detection,
        "detection.confirmed",
        actor,
        previous,
        list=hash_list.public_id,
        category=chosen,
        added=result.added,
        already_present=result.already_present,
        allow_list_removed=allow_list_removed,
        refused=[{"type": r["type"], "code": r["code"]} for r in refused],
    )
    webhooks.detection_reviewed_notify(detection=detection, category=chosen)
    return ConfirmResult(
        hash_list, result.added, result.already_present, allow_list_removed, refused
    )


def _allowed_rows(org: Organization, hashes: Iterable[SubmittedHash]) -> QuerySet[AllowedHash]:
    wanted = Q(pk__in=[])
    for h in hashes:
        wanted |= Q(signal_type=h.signal_type, value=h.value)
    return AllowedHash.objects.filter(wanted, organization=org)


@transaction.atomic
def detection_mark_false_positive(*, detection: Detection, note: str = "", actor: Actor) -> int:
    """Judge a detection a false positive: put its submitted hashes on the allow list.

    A hash already on the allow list is left as it is (never a second row). Sets the status to
    false_positive; writes an audit event; queues a ``detection.reviewed`` webhook event after
    commit. Returns how many hashes joined the allow list.
    """
    note = _clean_note(note)
    detection = _locked(detection)
    _review_allowed(detection, Detection.Status.FALSE_POSITIVE)
    org = detection.organization
    hashes = submitted_hashes(detection)
    present = {(row.signal_type, bytes(row.value)) for row in _allowed_rows(org, hashes)}
    fresh = [
        AllowedHash(
            organization=org,
            signal_type=h.signal_type,
            value=h.value,
            note=note,
            detection=detection,
            added_by_label=actor.label[:200],
        )
        for h in hashes
        if (h.signal_type, h.value) not in present
    ]
    # A concurrent review may have added the same hash since the read: the constraint wins.
    AllowedHash.objects.bulk_create(fresh, ignore_conflicts=True)
    previous = detection.status
    _mark_reviewed(detection, Detection.Status.FALSE_POSITIVE, note, actor)
    _audit_review(
        detection,
        "detection.false_positive",
        actor,
        previous,
        allowed=len(fresh),
        already_allowed=len(hashes) - len(fresh),
    )
    webhooks.detection_reviewed_notify(detection=detection)
    return len(fresh)


@transaction.atomic
def detection_dismiss(*, detection: Detection, note: str = "", actor: Actor) -> None:
    """Dismiss a detection (reviewed, no action on lists). Writes an audit event and queues a
    ``detection.reviewed`` webhook event after commit."""
    note = _clean_note(note)
    detection = _locked(detection)
    _review_allowed(detection, Detection.Status.DISMISSED)
    previous = detection.status
    _mark_reviewed(detection, Detection.Status.DISMISSED, note, actor)
    _audit_review(detection, "detection.dismissed", actor, previous)
    webhooks.detection_reviewed_notify(detection=detection)


REVIEW_ACTIONS = ("confirm", "false_positive", "dismiss")
MAX_BULK = MAX_PAGE_SIZE


def detections_for_org(*, org: Organization, public_ids: Iterable[str]) -> list[Detection]:
    """The organisation's detections of these ids, in the order given (each once).

    Raises Http404 when any id is missing or another organisation's: the same answer for both,
    and nothing is returned for the rest.
    """
    wanted = list(dict.fromkeys(public_ids))
    found = {
        detection.public_id: detection
        for detection in Detection.objects.filter(
            organization=org, public_id__in=wanted
        ).select_related("organization", "reviewed_by")
    }
    if len(found) != len(wanted):
        raise Http404("No such detection.")
    return [found[public_id] for public_id in wanted]


@transaction.atomic
def detections_review_bulk(
    *,
    org: Organization,
    public_ids: Iterable[str],
    action: str,
    category: str = "",
    note: str = "",
    actor: Actor,
) -> list[Detection]:
    """Review many detections alike: each goes through the very service of a single review
    (:func:`detection_confirm`, :func:`detection_mark_false_positive`, :func:`detection_dismiss`),
    so each writes its own audit event and webhook event, and a confirmation adds its hashes to
    the organisation's own list (``category``, else each detection's own category).

    All or nothing, in one transaction: an id of another organisation is a 404, and a
    confirmation that cannot choose a list (``category_required``), a bad action or note, or
    more than ``MAX_BULK`` ids is a ServiceError, before anything changes. Returns the
    detections reviewed, in the order given.
    """
    if action not in REVIEW_ACTIONS:
        raise ServiceError(
            "bad_action", f"action must be one of: {', '.join(REVIEW_ACTIONS)}.", status=400
        )
    note = _clean_note(note)
    detections = detections_for_org(org=org, public_ids=public_ids)
    if not detections:
        raise ServiceError("nothing_selected", "Select at least one detection.")
    if len(detections) > MAX_BULK:
        raise ServiceError("too_many_detections", f"Review at most {MAX_BULK} detections at once.")
    if action == "confirm":
        for detection in detections:
            try:
                confirm_category(detection, category)
            except ServiceError as error:
                raise ServiceError(
                    error.code,
                    f"Detection {detection.public_id}: {error.message}",
                    {"detection": detection.public_id},
                    status=error.status,
                ) from None
    for detection in detections:
        if action == "confirm":
            detection_confirm(detection=detection, category=category, note=note, actor=actor)
        elif action == "false_positive":
            detection_mark_false_positive(detection=detection, note=note, actor=actor)
        else:
            detection_dismiss(detection=detection, note=note, actor=actor)
    return detections


@transaction.atomic
def allowed_hash_remove(*, allowed: AllowedHash, actor: Actor) -> None:
    """Take a hash off the allow list, so its matches count again. Writes an audit event."""
    audit(
        actor=actor,
        action="allow_list.removed",
        organization=allowed.organization,
        target_type="allowed_hash",
        target_id=allowed.public_id,
        metadata={
            "type": allowed.signal_type,
            "detection": allowed.detection.public_id if allowed.detection else None,
            "suppressed_count": allowed.suppressed_count,
        },
    )
    allowed.delete()


PURGE_BATCH = 5000


def detections_purge(*, now: datetime | None = None) -> int:
    """Delete every organisation's detections older than hub.retention's period for them
    (HASHHUB_DETECTION_RETENTION_DAYS), except those a preservation hold keeps
    (matching.preservation: until the hold is released or its ``until`` passes).

    Runs without a tenant scope (from beat), in batches, each in its own transaction with one
    system audit event per organisation it touched. Allow-list rows keep their hash and lose the
    link to a purged detection; webhook deliveries of a purged detection go with it. Returns how
    many detections were deleted.
    """
    moment = now or timezone.now()
    period = retention.detections()
    cutoff = moment - period.delta
    with scopes_disabled():  # from beat: every organisation's rows
        due = Detection.objects.filter(created__lt=cutoff).exclude(
            pk__in=preservation.held_detection_ids(now=moment)
        )
        return purge_due(
            due,
            action="detections.purged",
            target_type="detection",
            cutoff=cutoff,
            period=period,
            batch=PURGE_BATCH,
        )
