"""The reads of reports, always through the caller's organisation: another organisation's report
is the same 404 as a missing one."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from django.db.models import Q, QuerySet
from django.http import Http404

from hub.lib.cursors import time_cursor_decode, time_cursor_encode
from hub.models import Organization
from matching.models import Detection
from reports.models import Report

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
