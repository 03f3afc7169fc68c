"""The report-to-listing loop: a reported hash that a verified source lists later.

When an organisation reports content, the hotline reviews it, and weeks later its hash may reach
a verified source's list. This module watches the one "a hash entered a list" hook
(``lists.changes.entries_entered_since``) for entries that enter a verified source's list, and
records a :class:`~reports.models.ReportListing` for each reported entry of that hash, once per
(reported entry, source list), with the source entry's ``added_at`` as ``listed_at``. The
owner's entry then shows "now in <source> since <date>" (:func:`entry_annotations`, through
``lists.annotations``), the report page lists it (:func:`reported_entries_of`), and the
dashboard charts the lag from filing to listing per source (:func:`listing_lag`).

A source's name is hub-level data: an organisation sees a listing only while it is entitled to
that source (``sharing.selectors.sources_available_to``), since otherwise the flip would tell it
what a source it may not match holds (DESIGN.md, invariant 7). Listings are recorded whatever
the entitlement (so they appear once access is granted); the audit line and the webhook, which
the organisation reads at once, only go out while it is entitled.

Own lists, community lists and the published view of anonymous lists are not sources and are
ignored. Driven by Celery (:data:`RUN_TASK`): every minute from beat, and after the commit of
any add while some report names an entry (``reports.receivers``).
"""

from __future__ import annotations

import math
import time
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from django.core.cache import cache
from django.db import transaction
from django.utils import timezone
from django_scopes import scopes_disabled

from hub.audit import Actor, audit
from hub.celery import ScopedTask, app
from hub.models import Organization
from lists import changes
from lists.hashtypes import get_signal_type
from lists.models import Entry, HashList
from matching.webhooks import event_notify
from reports.models import ListingCursor, Report, ReportedEntry, ReportListing
from reports.services import report_webhook_data
from sharing.selectors import sources_available_to

ACTOR = Actor(system="report listings")
"""Who a ``report.listed`` audit line names."""

ENTERED_BATCH = 2000
"""Entries read from the "entered a list" feed per transaction."""

RUN_SECONDS = 50.0
"""A run stops taking new batches after this long: beat starts the next one a minute later."""

RUN_TASK = "reports.listings_run"
_QUEUED_KEY = "reports:listings-queued"


# --- the loop ------------------------------------------------------------------------------------


def listings_run(*, seconds: float = RUN_SECONDS) -> int:
    """Record the listings of reported hashes that entered verified sources' lists since the
    last run, batch by batch, each batch in one transaction with the cursor's advance.

    One run at a time (the cursor row is locked; a second run finds it taken and returns).
    Returns how many listings it recorded. Side effects: ReportListing rows, ``report.listed``
    audit lines and webhooks (for entitled organisations), the cursor.
    """
    started = time.monotonic()
    recorded = 0
    reported = _ReportedHashes()
    with scopes_disabled():
        ListingCursor.objects.get_or_create(pk=1)
    while True:
        with transaction.atomic(), scopes_disabled():
            held = ListingCursor.objects.select_for_update(skip_locked=True).filter(pk=1).first()
            if held is None:
                return recorded  # another run holds it
            entered, upto = changes.entries_entered_since(after=held.after, limit=ENTERED_BATCH)
            recorded += _entered_process(entered, reported.refreshed())
            if upto != held.after:
                ListingCursor.objects.filter(pk=1).update(after=upto, updated=timezone.now())
        if len(entered) < ENTERED_BATCH or time.monotonic() - started > seconds:
            return recorded


class _ReportedHashes:
    """The ids of every hash a report names, read once per run and then only the reported
    entries made since (by pk): a batch of entered entries is checked against it in memory, and
    only its hits are looked up (bench/report_listings.py: the per-batch look-up of 2,000 ids
    was most of the loop's cost)."""

    def __init__(self) -> None:
        self.hash_ids: set[int] = set()
        self.last_pk = 0

    def refreshed(self) -> set[int]:
        for pk, hash_id in (
            ReportedEntry.objects.filter(pk__gt=self.last_pk)
            .order_by("pk")
            .values_list("pk", "hash_id")
        ):
            self.hash_ids.add(hash_id)
            self.last_pk = pk
        return self.hash_ids


def _entered_process(
    entered: Sequence[changes.EnteredEntry], reported_hashes: set[int] | None = None
) -> int:
    """Record the listings the entered entries make; returns how many were new.
    ``reported_hashes``: the ids of the hashes reports name (read here when not given)."""
    # A source's list is read by everyone in its owner's view: a published row is the
    # publication of an anonymous (organisation's) list, never a source's.
    added = [row for row in entered if not row.published]
    if not added:
        return 0
    source_lists = {
        hl.pk: hl
        for hl in HashList.objects.filter(
            pk__in={row.list_pk for row in added}, source__isnull=False, deleted_at__isnull=True
        ).select_related("source")
    }
    added = [row for row in added if row.list_pk in source_lists]
    if not added:
        return 0
    if reported_hashes is None:
        reported_hashes = _ReportedHashes().refreshed()
    added = [row for row in added if row.hash_id in reported_hashes]
    if not added:
        return 0
    reported = list(
        ReportedEntry.objects.filter(hash_id__in={row.hash_id for row in added}).select_related(
            "report", "organization"
        )
    )
    if not reported:
        return 0
    added_at = dict(
        Entry.objects.filter(added_seq__in=[row.seq for row in added]).values_list(
            "added_seq", "added_at"
        )
    )
    by_hash: dict[int, list[ReportedEntry]] = defaultdict(list)
    for reported_entry in reported:
        by_hash[reported_entry.hash_id].append(reported_entry)
    existing = set(
        ReportListing.objects.filter(
            reported_entry__in=reported, hash_list_id__in=source_lists
        ).values_list("reported_entry_id", "hash_list_id")
    )
    fresh: list[ReportListing] = []
    for row in added:
        listed_at = added_at.get(row.seq)
        if listed_at is None:  # removed again before this run read it
            continue
        for reported_entry in by_hash.get(row.hash_id, []):
            key = (reported_entry.pk, row.list_pk)
            if key in existing:
                continue
            existing.add(key)
            fresh.append(
                ReportListing(
                    reported_entry=reported_entry,
                    hash_list_id=row.list_pk,
                    listed_at=listed_at,
                    before_report=listed_at < reported_entry.report.created,
                )
            )
    if not fresh:
        return 0
    ReportListing.objects.bulk_create(fresh, ignore_conflicts=True)
    _announce(fresh, source_lists)
    return len(fresh)


def _announce(fresh: list[ReportListing], source_lists: dict[int, HashList]) -> None:
    """One ``report.listed`` audit line and webhook per (report, source list), to organisations
    entitled to the source (see the module's docstring)."""
    grouped: dict[tuple[int, int], list[ReportListing]] = defaultdict(list)
    for listing in fresh:
        grouped[(listing.reported_entry.report_id, listing.hash_list_id)].append(listing)
    entitled: dict[int, set[int]] = {}
    for (_, list_pk), listings in sorted(grouped.items()):
        report: Report = listings[0].reported_entry.report
        org: Organization = listings[0].reported_entry.organization
        if org.pk not in entitled:
            entitled[org.pk] = {s.pk for s in sources_available_to(org=org).values()}
        hash_list = source_lists[list_pk]
        if hash_list.source_id not in entitled[org.pk] or org.deleted_at is not None:
            continue
        listed_at = min(listing.listed_at for listing in listings)
        before = all(listing.before_report for listing in listings)
        source = hash_list.source
        if source is None:  # never: only source lists are in source_lists
            continue
        audit(
            actor=ACTOR,
            action="report.listed",
            organization=org,
            target_type="report",
            target_id=report.public_id,
            metadata={
                "source": source.name,
                "list": hash_list.public_id,
                "hashes": len(listings),
                "listed_at": listed_at.isoformat(),
                "before_report": before,
            },
        )
        event_notify(
            organization_id=org.pk,
            detection_id=report.detection_id,
            event="report.listed",
            data={
                **report_webhook_data(report),
                "listed": {
                    "source": source.name,
                    "list": hash_list.public_id,
                    "listed_at": listed_at.isoformat(),
                    "before_report": before,
                    "hashes": len(listings),
                },
            },
        )


@app.task(base=ScopedTask, name=RUN_TASK)
def listings_run_task() -> int:
    """Record the listings of reported hashes (every minute from beat, and after each commit
    that added entries while some report names an entry). Returns the listings recorded."""
    return listings_run()


def _queue_run() -> None:
    # Nothing to do while no report names an entry (the common case: no task per add).
    with scopes_disabled():
        if not ReportedEntry.objects.exists():
            return
    # Commits in quick succession (a source's pages) queue one run, which reads them all;
    # beat's run a minute later covers any that came just after it started.
    if cache.add(_QUEUED_KEY, 1, timeout=5):
        app.send_task(RUN_TASK)


def entries_entered(**_: Any) -> None:
    """The receiver of ``lists.changes.entries_entered`` (connected in reports.receivers)."""
    # robust: a broker outage after the commit is logged, never raised into the adding request.
    transaction.on_commit(_queue_run, robust=True)


# --- what an organisation sees -------------------------------------------------------------------


@dataclass(frozen=True)
class Listed:
    """A verified source that listed a reported hash, as the reporting organisation sees it."""

    source: str
    source_id: str
    list_id: str  # the source's list
    listed_at: datetime
    before_report: bool

    def as_dict(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "listed_at": self.listed_at.isoformat(),
            "before_report": self.before_report,
        }


def _listed_of(*, org: Organization, reported: Iterable[ReportedEntry]) -> dict[int, list[Listed]]:
    """Reported entry pk -> the listings of it by sources ``org`` is entitled to, earliest first."""
    pks = [reported_entry.pk for reported_entry in reported]
    if not pks:
        return {}
    entitled = {source.pk for source in sources_available_to(org=org).values()}
    found: dict[int, list[Listed]] = defaultdict(list)
    with scopes_disabled():
        rows = (
            ReportListing.objects.filter(
                reported_entry_id__in=pks, hash_list__source_id__in=entitled
            )
            .order_by("listed_at", "pk")
            .values_list(
                "reported_entry_id",
                "hash_list__source__name",
                "hash_list__source__public_id",
                "hash_list__public_id",
                "listed_at",
                "before_report",
            )
        )
        for reported_entry_id, name, public_id, list_id, listed_at, before in rows:
            found[reported_entry_id].append(Listed(name, public_id, list_id, listed_at, before))
    return found


@dataclass(frozen=True)
class ReportedEntryRow:
    """An entry a report names, with the sources that listed its hash since."""

    reported_entry: ReportedEntry
    list_name: str
    list_id: str
    entry_id: str
    signal_type: str
    value: str
    removed: bool
    listed: list[Listed] = field(default_factory=list)


def reported_entries_of(*, report: Report) -> list[ReportedEntryRow]:
    """The entries ``report`` names (of its organisation's own lists) and their listings by
    the verified sources the organisation is entitled to, earliest first: the one reader of
    them, for the report page and ``GET /api/v1/reports/{id}``."""
    with scopes_disabled():
        reported = list(
            ReportedEntry.objects.filter(report=report, organization_id=report.organization_id)
            .select_related("entry__hash_list", "hash", "organization")
            .order_by("pk")
        )
    listed = _listed_of(org=report.organization, reported=reported)
    rows = []
    for reported_entry in reported:
        signal_type = get_signal_type(reported_entry.hash.signal_type)
        entry = reported_entry.entry
        rows.append(
            ReportedEntryRow(
                reported_entry=reported_entry,
                list_name=entry.hash_list.name,
                list_id=entry.hash_list.public_id,
                entry_id=entry.public_id,
                signal_type=signal_type.name,
                value=signal_type.to_text(bytes(reported_entry.hash.value)),
                removed=entry.removed_seq is not None,
                listed=listed.get(reported_entry.pk, []),
            )
        )
    return rows


def entry_annotations(*, org: Organization, entries: Sequence[Entry]) -> dict[int, dict[str, Any]]:
    """The ``lists.annotations`` provider: for each of ``org``'s entries a report names, the
    latest such report's public id and the entitled sources that listed the hash since.

    lists calls it for the owner's own lists only; it still reads ``org``'s own rows only.
    """
    with scopes_disabled():
        reported = list(
            ReportedEntry.objects.filter(organization=org, entry_id__in=[e.pk for e in entries])
            .select_related("report")
            .order_by("entry_id", "-report__created", "-pk")
        )
    latest: dict[int, ReportedEntry] = {}
    for reported_entry in reported:
        latest.setdefault(reported_entry.entry_id, reported_entry)
    listed = _listed_of(org=org, reported=reported)
    said: dict[int, dict[str, Any]] = {}
    for entry_id, reported_entry in latest.items():
        # Any report of the entry may have seen it listed; each source once, earliest first.
        sources: dict[str, Listed] = {}
        for other in reported:
            if other.entry_id == entry_id:
                for item in listed.get(other.pk, []):
                    if (
                        item.source_id not in sources
                        or item.listed_at < sources[item.source_id].listed_at
                    ):
                        sources[item.source_id] = item
        said[entry_id] = {
            "report": reported_entry.report.public_id,
            "listed": [
                {"source": item.source, "listed_at": item.listed_at}
                for item in sorted(sources.values(), key=lambda item: item.listed_at)
            ],
        }
    return said


# --- the lag -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class LagRow:
    """The time from filing a report to a verified source listing its hash, for one source."""

    source: str
    source_id: str
    n: int
    median_days: float
    p90_days: float
    max_days: float


def percentile(values: Sequence[float], fraction: float) -> float:
    """The ``fraction`` quantile of ``values`` by linear interpolation between closest ranks
    (the median of an even count is the mean of the middle two)."""
    if not values:
        raise ValueError("no values")
    ordered = sorted(values)
    position = (len(ordered) - 1) * fraction
    low, high = math.floor(position), math.ceil(position)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def listing_lag(*, org: Organization) -> list[LagRow]:
    """Per verified source ``org`` is entitled to: how many of its filed reports the source
    listed since, and the median and 90th percentile of the days from ``filed_at`` to the
    listing (the earliest listing of any of the report's hashes by that source).

    Listings from before the report was opened say nothing of the lag and are left out, as are
    drafts. A listing dated before the filing date (the hotline's date the analyst entered)
    counts as 0 days. Sources ordered by name.
    """
    entitled = {source.pk for source in sources_available_to(org=org).values()}
    if not entitled:
        return []
    with scopes_disabled():
        rows = ReportListing.objects.filter(
            # One organisation filter (a reported entry is its report's organisation's): a second
            # one through the report misled the planner at scale (bench/report_listings.py).
            reported_entry__organization=org,
            reported_entry__report__filed_at__isnull=False,
            before_report=False,
            hash_list__source_id__in=entitled,
        ).values_list(
            "reported_entry__report_id",
            "reported_entry__report__filed_at",
            "hash_list__source_id",
            "hash_list__source__name",
            "hash_list__source__public_id",
            "listed_at",
        )
        first: dict[tuple[int, int], tuple[datetime, datetime]] = {}
        names: dict[int, tuple[str, str]] = {}
        for report_id, filed_at, source_pk, name, public_id, listed_at in rows:
            if filed_at is None:  # never: filtered above
                continue
            names[source_pk] = (name, public_id)
            key = (report_id, source_pk)
            if key not in first or listed_at < first[key][1]:
                first[key] = (filed_at, listed_at)
    lags: dict[int, list[float]] = defaultdict(list)
    for (_, source_pk), (filed_at, listed_at) in first.items():
        lags[source_pk].append(max(0.0, (listed_at - filed_at).total_seconds() / 86400))
    found = [
        LagRow(
            source=names[source_pk][0],
            source_id=names[source_pk][1],
            n=len(days),
            median_days=round(percentile(days, 0.5), 1),
            p90_days=round(percentile(days, 0.9), 1),
            max_days=round(max(days), 1),
        )
        for source_pk, days in lags.items()
    ]
    return sorted(found, key=lambda row: row.source.lower())
