"""The reads of reports, always through the caller's organisation: another organisation's report
is the same 404 as a missing one."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from django.db.models import Q, QuerySet
from django.http import Http404
from django_scopes import scopes_disabled

from hub.lib.cursors import time_cursor_decode, time_cursor_encode
from hub.models import Organization
from lists.hashtypes import HashParseError, get_signal_type
from lists.models import Entry, Hash, HashList
from matching.models import Detection
from reports.models import Report, ReportedEntry, ReportListing
from sharing.selectors import sources_available_to

PAGE_SIZE = 50
MAX_PAGE_SIZE = 200


def reports_of(*, org: Organization, state: str = "") -> QuerySet[Report]:
    """The organisation's reports, newest first, optionally in one state."""
    reports = Report.objects.filter(organization=org)
    if state:
        reports = reports.filter(state=state)
    return reports.order_by("-created", "-id")


def get_report_for_org(*, org: Organization, public_id: str) -> Report:
    """One of the organisation's reports; the same 404 for a missing id and another org's."""
    report = (
        Report.objects.filter(organization=org, public_id=public_id)
        .select_related("organization")
        .first()
    )
    if report is None:
        raise Http404("No such report.")
    return report


def report_for_detection(*, detection: Detection) -> Report | None:
    """The report about ``detection``, if one was opened (at most one is)."""
    return Report.objects.filter(
        organization_id=detection.organization_id, detection_ref=detection.public_id
    ).first()


@dataclass(frozen=True)
class ReportPage:
    reports: list[Report]
    next_cursor: str | None


def _encode_cursor(report: Report) -> str:
    return time_cursor_encode(report.created, report.public_id)


def _decode_cursor(cursor: str) -> tuple[datetime, str]:
    return time_cursor_decode(cursor)


def reports_page(
    *, org: Organization, state: str = "", cursor: str = "", limit: int = PAGE_SIZE
) -> ReportPage:
    """A page of the organisation's reports, newest first (keyset paging on created and public
    id, so a page stays right while reports are opened). ServiceError ``bad_cursor`` for a
    cursor this hub did not give out."""
    limit = max(1, min(limit, MAX_PAGE_SIZE))
    found = reports_of(org=org, state=state).order_by("-created", "-public_id")
    if cursor:
        created, public_id = _decode_cursor(cursor)
        found = found.filter(Q(created__lt=created) | Q(created=created, public_id__lt=public_id))
    rows = list(found[: limit + 1])
    next_cursor = _encode_cursor(rows[limit - 1]) if len(rows) > limit else None
    return ReportPage(rows[:limit], next_cursor)


@dataclass(frozen=True)
class Listing:
    """A verified source's list that holds a reported entry's hash, and since when."""

    source: str
    list_id: str
    listed_at: datetime
    before_report: bool


@dataclass(frozen=True)
class ReportedEntryView:
    """An entry of the organisation's own CSAM list that the report is about."""

    list_id: str
    entry_id: str
    signal_type: str
    value: str
    listings: tuple[Listing, ...]


def _text_of(stored: Hash) -> str:
    try:
        return get_signal_type(stored.signal_type).to_text(bytes(stored.value))
    except (HashParseError, ValueError):  # a type no longer registered: its hex all the same
        return bytes(stored.value).hex()


def report_entries(*, report: Report) -> list[ReportedEntryView]:
    """The report's entries (own list, entry, hash) with the verified listings of each, oldest
    listing first. Read by the organisation that owns the report only."""
    reported = list(
        ReportedEntry.objects.filter(organization_id=report.organization_id, report=report)
        .select_related("hash")
        .order_by("id")
    )
    if not reported:
        return []
    entries = {
        entry.pk: entry
        for entry in Entry.objects.filter(pk__in=[row.entry_id for row in reported])
        .select_related("hash_list")
        .only("pk", "public_id", "hash_list__public_id")
    }
    listings: dict[int, list[Listing]] = {}
    # Only sources the organisation may match: a listing by any other would tell it what a
    # source it may not match holds (DESIGN.md, invariant 7).
    entitled = [source.pk for source in sources_available_to(org=report.organization).values()]
    # The sources' lists are the hub's own data, outside every organisation's scope.
    with scopes_disabled():
        rows = (
            ReportListing.objects.filter(
                reported_entry__in=reported, hash_list__source_id__in=entitled
            )
            .select_related("hash_list__source")
            .order_by("listed_at", "id")
        )
        for listing in rows:
            source = listing.hash_list.source
            listings.setdefault(listing.reported_entry_id, []).append(
                Listing(
                    source=source.name if source is not None else listing.hash_list.name,
                    list_id=listing.hash_list.public_id,
                    listed_at=listing.listed_at,
                    before_report=listing.before_report,
                )
            )
    views = []
    for row in reported:
        entry = entries.get(row.entry_id)
        hash_list: HashList | None = entry.hash_list if entry is not None else None
        views.append(
            ReportedEntryView(
                list_id=hash_list.public_id if hash_list is not None else "",
                entry_id=entry.public_id if entry is not None else "",
                signal_type=row.hash.signal_type,
                value=_text_of(row.hash),
                listings=tuple(listings.get(row.pk, ())),
            )
        )
    return views
