"""Retractions reach past detections (issue 19).

Every detection records what it matched through (:class:`~matching.models.DetectionHit`: the
list, the stored hash, and whether the organisation saw the list through its published view).
When an entry leaves a list (its owner removes it, an upstream deletes it, a dispute against it
is upheld: every path ends in ``lists.changes.entries_tombstone``; for another owner's anonymous
list, others' view changes when the removal is published), the detections whose every hit is no
longer held in the organisation's view are flagged ``retracted_at``, audited, and sent to the
organisation's webhooks as ``detection.retracted`` (never for shadow detections, which are never
sent).

The reader follows the change sequence with a cursor of its own (:class:`RetractionCursor`), so
each removal is read once whichever path made it, and a run reads at most ``RUN_LIMIT`` removals
(the next run goes on from there). A Celery beat task runs it every minute, and a removal queues
a run after its transaction commits (:func:`connect`).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from typing import Any

from django.core.cache import cache
from django.db import transaction
from django.utils import timezone
from django_scopes import scopes_disabled

from hub.audit import Actor, audit
from hub.celery import app
from lists import changes
from matching import webhooks
from matching.models import Detection, DetectionHit, RetractionCursor

RUN_TASK = "matching.retractions_run"
RUN_LIMIT = 5000
"""The most removals one run reads; the next run goes on from where it stopped."""

RETRACTOR = Actor(system="retractions")
_QUEUED_KEY = "hashhub:retractions:queued"
_QUEUED_SECONDS = 60


def detection_hits_record(*, detection: Detection, hits: Iterable[tuple[int, int, bool]]) -> int:
    """Record ``(list id, hash id, published view)`` as what ``detection`` matched through.

    Call it in the transaction that creates the detection. Returns how many were recorded.
    """
    rows = [
        DetectionHit(detection=detection, hash_list_id=list_pk, hash_id=hash_id, published_view=pub)
        for list_pk, hash_id, pub in sorted(set(hits))
    ]
    DetectionHit.objects.bulk_create(rows, ignore_conflicts=True)
    return len(rows)


def _cursor() -> RetractionCursor | None:
    """The cursor row, locked until commit; None while another run holds it."""
    # A flushed database (or one made before the migration's row) starts from the beginning.
    RetractionCursor.objects.get_or_create(pk=1)
    return RetractionCursor.objects.select_for_update(skip_locked=True).filter(pk=1).first()


def _retract(detection_ids: Iterable[int]) -> list[Detection]:
    """Flag the detections (those not flagged yet) retracted now; audit each, send webhooks."""
    now = timezone.now()
    flagged = list(
        Detection.objects.select_for_update()
        .select_related("organization")
        .filter(pk__in=sorted(set(detection_ids)), retracted_at__isnull=True)
        .order_by("pk")
    )
    for detection in flagged:
        detection.retracted_at = now
        detection.save(update_fields=["retracted_at"])
        audit(
            actor=RETRACTOR,
            action="detection.retracted",
            organization=detection.organization,
            target_type="detection",
            target_id=detection.public_id,
            metadata={"status": detection.status},
        )
        # Shadow detections are never sent (issue 19: shadow mode).
        if not detection.shadow:
            webhooks.detection_retracted_notify(detection=detection)
    return flagged


def detections_retract_for(left: Iterable[changes.LeftEntry]) -> list[Detection]:
    """Flag the detections that ``left`` leaves with no hit still held in their view."""
    gone = {(e.list_pk, e.hash_id, e.published) for e in left}
    if not gone:
        return []
    touched = {
        detection_id
        for detection_id, list_pk, hash_id, published in DetectionHit.objects.filter(
            hash_id__in={hash_id for _, hash_id, _ in gone},
            hash_list_id__in={list_pk for list_pk, _, _ in gone},
            detection__retracted_at__isnull=True,
        ).values_list("detection_id", "hash_list_id", "hash_id", "published_view")
        if (list_pk, hash_id, published) in gone
    }
    if not touched:
        return []
    hits: dict[int, list[tuple[int, int, bool]]] = defaultdict(list)
    for detection_id, list_pk, hash_id, published in DetectionHit.objects.filter(
        detection_id__in=touched
    ).values_list("detection_id", "hash_list_id", "hash_id", "published_view"):
        hits[detection_id].append((list_pk, hash_id, published))
    held = changes.entries_still_held(hit for found in hits.values() for hit in found)
    return _retract(
        detection_id
        for detection_id, found in hits.items()
        if not any(hit in held for hit in found)
    )


def retractions_run(*, limit: int = RUN_LIMIT) -> int:
    """Read the removals since the cursor (at most ``limit``), flag the detections they retract,
    and move the cursor on, all in one transaction. Returns how many detections it flagged.

    Side effects: ``retracted_at`` set, one ``detection.retracted`` audit event per detection,
    ``detection.retracted`` webhook deliveries queued after commit. A run that finds another
    one in progress does nothing (that one, or the next, reads the same removals).
    """
    with scopes_disabled(), transaction.atomic():
        cursor = _cursor()
        if cursor is None:
            return 0
        left, last = changes.entries_left_since(after=cursor.last_seq, limit=limit)
        flagged = detections_retract_for(left)
        if last != cursor.last_seq:
            cursor.last_seq = last
            cursor.updated = timezone.now()
            cursor.save(update_fields=["last_seq", "updated"])
    return len(flagged)


def retractions_run_queued() -> int:
    """The task's body: let the next removal queue another run, then run."""
    cache.delete(_QUEUED_KEY)
    return retractions_run()


def _queue_run() -> None:
    # One queued run covers every removal committed before it starts: removals committed
    # meanwhile (a source import removes page by page) do not queue one each.
    if cache.add(_QUEUED_KEY, 1, timeout=_QUEUED_SECONDS):
        app.send_task(RUN_TASK)


def queue_after_removal(sender: object, **kwargs: Any) -> None:
    """``lists.changes.entries_removed``: run the retractions once the removal has committed."""
    transaction.on_commit(_queue_run, robust=True)


def connect() -> None:
    changes.entries_removed.connect(
        queue_after_removal, dispatch_uid="matching-retractions-follow-removals"
    )
