"""Keeping submitted hashes for retroactive matching (called by the match service).

The half of retroactive matching that the match service calls, so that it never imports the
half that calls it back (:mod:`matching.retroactive`, which re-matches kept submissions through
the match service): :func:`submissions_keep` keeps a request's hashes under the organisation's
quota, :class:`RetroactiveOf` tells the match service what a re-match is about, and
:func:`kept_purge` removes expired kept submissions (the daily retention task).
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import DatabaseError, transaction
from django.db.models import Q
from django.utils import timezone
from django_scopes import scopes_disabled

from hub.audit import Actor, audit
from hub.models import Organization
from lists import changes
from matching import preservation
from matching.models import KeptCount, KeptSubmission
from sharing.policy import policy_of

logger = logging.getLogger(__name__)

ACTOR = Actor(system="retroactive matching")

PURGE_BATCH = 5000
"""Kept submissions deleted per transaction by the purge."""


@dataclass(frozen=True)
class KeepOutcome:
    """What one match request's keep did: submissions kept (new or refreshed), and new ones left
    out because the organisation's quota was full."""

    kept: int
    refused: int


@dataclass(frozen=True)
class RetroactiveOf:
    """The match service's instruction for a retroactive re-match: record a detection only if
    one of ``entered`` (list public id, matched value as text) is among the matches, marked
    retroactive with the original request's time."""

    requested_at: datetime
    entered: frozenset[tuple[str, str]]

    def raised_by(self, results: Iterable[Sequence[dict[str, Any]]]) -> bool:
        """Whether any result's matches (the API's match objects) name a (list, value) pair
        that just entered."""
        return any(
            (match["list"]["id"], match["matched_value"]) in self.entered
            for matches in results
            for match in matches
        )


def submissions_keep(
    *,
    org: Organization,
    days: int,
    hashes: Iterable[tuple[str, bytes]],
    content_ref: str,
    seen_seq: int | None,
    now: datetime | None = None,
) -> KeepOutcome | None:
    """Keep the submitted ``(type, value)`` hashes for retroactive matching for ``days`` (the
    organisation's policy, which the match service has read; 0 keeps nothing).

    One row per (type, value, content_ref): submitting the same again refreshes its time and
    expiry. New rows stop at the quota (``HASHHUB_RETROACTIVE_MAX_KEPT`` per organisation);
    those left out are counted in the outcome and logged, and the match goes on as ever.
    ``seen_seq``: the last change the match read, if the caller knows it (else read here).
    Returns None when the organisation keeps nothing (or the keep failed: it never fails the
    match; the error is logged). Side effects: kept rows and the organisation's kept count,
    in a savepoint of their own.
    """
    if days <= 0:
        return None
    wanted = list(dict.fromkeys(hashes))  # in the order sent: the first fit the quota
    if not wanted:
        return KeepOutcome(0, 0)
    moment = now or timezone.now()
    try:
        with transaction.atomic(), scopes_disabled():
            seen = seen_seq if seen_seq is not None else changes.sequence_last()
            return _keep(org, wanted, content_ref, moment, moment + timedelta(days=days), seen)
    except DatabaseError:
        logger.exception("could not keep submissions of organisation %s", org.pk)
        return None


def _keep(
    org: Organization,
    wanted: list[tuple[str, bytes]],
    content_ref: str,
    now: datetime,
    expires_at: datetime,
    seen: int,
) -> KeepOutcome:
    # The count row's lock orders concurrent keeps of one organisation, so the quota is exact.
    counter, _ = KeptCount.objects.select_for_update().get_or_create(organization=org)
    by_type: dict[str, list[bytes]] = defaultdict(list)
    for signal_type, value in wanted:
        by_type[signal_type].append(value)
    present: set[tuple[str, bytes]] = set()
    for signal_type, values in by_type.items():
        present.update(
            (signal_type, bytes(value))
            for value in KeptSubmission.objects.filter(
                organization=org, content_ref=content_ref, signal_type=signal_type, value__in=values
            ).values_list("value", flat=True)
        )
    fresh = [pair for pair in wanted if pair not in present]
    room = max(0, settings.HASHHUB_RETROACTIVE_MAX_KEPT - counter.kept)
    taken, refused = fresh[:room], len(fresh) - min(room, len(fresh))
    rows = [
        KeptSubmission(
            organization=org,
            signal_type=signal_type,
            value=value,
            content_ref=content_ref,
            requested_at=now,
            expires_at=expires_at,
            seen_seq=seen,
        )
        for signal_type, value in [*(p for p in wanted if p in present), *taken]
    ]
    if rows:
        KeptSubmission.objects.bulk_create(
            rows,
            update_conflicts=True,
            unique_fields=("organization", "signal_type", "value", "content_ref"),
            update_fields=("requested_at", "expires_at", "seen_seq"),
        )
    if taken:
        KeptCount.objects.filter(pk=counter.pk).update(kept=counter.kept + len(taken))
    if refused:
        logger.warning(
            "organisation %s keeps %s submissions, its quota: %s new ones were not kept",
            org.pk,
            counter.kept + len(taken),
            refused,
        )
    return KeepOutcome(len(rows), refused)


def kept_purge(*, now: datetime | None = None) -> int:
    """Delete kept submissions past their expiry, and every one of organisations that turned
    retroactive matching off; returns how many.

    A kept submission a preservation hold keeps (the hashes a held detection submitted, with its
    content_ref: matching.preservation.held_submission_keys) stays while the hold is active, even
    past its expiry or with retroactive matching off; it still counts against the quota.
    In batches, each in its own transaction with the organisations' kept counts and one system
    audit event per organisation it touched (from the daily retention task, without a scope).
    """
    moment = now or timezone.now()
    purged = 0
    with scopes_disabled():
        keeping = KeptCount.objects.filter(kept__gt=0).select_related("organization")
        stopped = [
            count.organization_id
            for count in keeping
            if policy_of(org=count.organization).retroactive_days <= 0
        ]
        due = Q(expires_at__lte=moment) | Q(organization_id__in=stopped)
        held = preservation.held_submission_keys(now=moment)
        after = 0  # the batches walk the due rows by pk, so held ones are passed only once
        while True:
            with transaction.atomic():
                rows = list(
                    KeptSubmission.objects.filter(due, pk__gt=after)
                    .order_by("pk")
                    .values_list("pk", "organization_id", "signal_type", "value", "content_ref")[
                        :PURGE_BATCH
                    ]
                )
                if not rows:
                    return purged
                after = rows[-1][0]
                batch = [
                    (pk, org_id)
                    for pk, org_id, signal_type, value, ref in rows
                    if (org_id, signal_type, bytes(value), ref) not in held
                ]
                if not batch:
                    continue
                per_org: dict[int, int] = defaultdict(int)
                for _, org_id in batch:
                    per_org[org_id] += 1
                # The counts first: their row locks order this against concurrent keeps.
                counts = {
                    c.organization_id: c
                    for c in KeptCount.objects.select_for_update().filter(
                        organization_id__in=list(per_org)
                    )
                }
                KeptSubmission.objects.filter(pk__in=[pk for pk, _ in batch]).delete()
                orgs = Organization.objects.in_bulk(list(per_org))
                for org_id, count in sorted(per_org.items()):
                    if org_id in counts:
                        KeptCount.objects.filter(pk=counts[org_id].pk).update(
                            kept=max(0, counts[org_id].kept - count)
                        )
                    audit(
                        actor=ACTOR,
                        action="retroactive.purged",
                        organization=orgs[org_id],
                        target_type="organization",
                        metadata={"purged": count, "expired_before": moment.isoformat()},
                    )
            purged += len(batch)
