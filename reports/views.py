"""Web pages of reports, under ``/o/<org_slug>/reports/``: the index (with the hotline profile),
opening a report from a confirmed detection, one report (its package, the analyst's fields, the
state changes, the hold, the reported entries and where they are listed now), the download, the
printable summary, and the report-to-listing lag the dashboard loads.

Reading takes ``reports.read``, changing ``reports.write``, the profile ``reports.settings``; a
report of another organisation is the same 404 as a missing one (reports.selectors). The rules
live in reports.services: these views translate forms to calls.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime
from functools import cached_property
from typing import Any

from django.contrib import messages
from django.core.paginator import Paginator
from django.http import HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from hub.audit import Actor
from hub.decorators import org_permission
from hub.errors import ServiceError
from hub.lib.charts import BarPlot
from hub.middleware import OrgRequest
from matching import review
from reports import downloads, listings, selectors, services
from reports.forms import (
    ReportAcknowledgeForm,
    ReportEditForm,
    ReportFileForm,
    ReportFilterForm,
    ReportSettingsForm,
)
from reports.models import Report

PAGE_SIZE = 50


# --- the index ----------------------------------------------------------------------------------


@require_http_methods(["GET", "POST"])
@org_permission("reports.read", post="reports.settings")
def reports_index(request: OrgRequest, org_slug: str) -> HttpResponse:
    org = request.organization
    current = services.report_settings_of(org=org).profile
    settings_form = ReportSettingsForm(
        request.POST or None, initial={"profile": current}, profiles=downloads.profile_choices()
    )
    if request.method == "POST" and settings_form.is_valid():
        try:
            services.report_settings_set(
                org=org,
                profile=settings_form.cleaned_data["profile"],
                actor=Actor.from_request(request),
            )
        except ServiceError as error:
            settings_form.add_error("profile", error.message)
        else:
            messages.success(request, "The hotline profile is saved.")
            return redirect("reports", org_slug=org_slug)
    filters = ReportFilterForm(request.GET)
    state = filters.cleaned_data["state"] if filters.is_valid() else ""
    page = Paginator(selectors.reports_of(org=org, state=state), PAGE_SIZE).get_page(
        request.GET.get("page")
    )
    context = {
        "filters": filters,
        "state": state,
        "page": page,
        "settings_form": settings_form,
        "profile_label": dict(downloads.profile_choices()).get(current, current),
    }
    status = 400 if settings_form.errors or filters.errors else 200
    return render(request, "reports/index.html", context, status=status)


# --- opening a report from a detection ----------------------------------------------------------


@require_POST
@org_permission("reports.write")
def report_open(request: OrgRequest, org_slug: str, reportable_id: str) -> HttpResponse:
    """Open a draft report about a confirmed-CSAM detection (the detection page's button).

    ``reportable_id`` is the detection's id (named apart from ``detection_id`` for the
    permission table, whose detections are not confirmed)."""
    detection = review.get_detection_for_org(org=request.organization, public_id=reportable_id)
    try:
        report = services.report_open(detection=detection, actor=Actor.from_request(request))
    except ServiceError as error:
        messages.error(request, error.message)
        if error.code == "already_reported" and isinstance(error.details, dict):
            return redirect("report_detail", org_slug=org_slug, report_id=error.details["report"])
        return redirect("detection_detail", org_slug=org_slug, detection_id=reportable_id)
    messages.success(
        request, "A draft report is open: fill in what the hotline needs, then mark it filed."
    )
    return redirect("report_detail", org_slug=org_slug, report_id=report.public_id)


# --- one report ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class PackageMatch:
    """One match of the package (as the match API answered it), as a row of the page."""

    type: str
    submitted: str
    labels: list[str]
    distance: int | None
    matched_value: str
    record_id: str
    described: dict[str, Any]  # the list, as the match API described it

    @property
    def contributor(self) -> str:
        if self.described.get("anonymous") or not self.described.get("contributor"):
            return "Anonymous member"
        return str(self.described["contributor"])


def _package_matches(package: dict[str, Any]) -> list[PackageMatch]:
    detection = package.get("detection") or {}
    return [
        PackageMatch(
            type=str(result.get("type", "")),
            submitted=str(result.get("value", "")),
            labels=[str(label) for label in match.get("labels") or []],
            distance=match.get("distance"),
            matched_value=str(match.get("matched_value", "")),
            record_id=str(match.get("record_id") or ""),
            described=match.get("list") or {},
        )
        for result in detection.get("matches") or []
        for match in result.get("matches") or []
    ]


def _moment(text: Any) -> datetime | None:
    """A time the package keeps as ISO 8601 text, for the template to format."""
    try:
        return datetime.fromisoformat(text) if isinstance(text, str) else None
    except ValueError:
        return None


def _uploader_ref(report: Report) -> tuple[str, str]:
    """The decrypted uploader reference and, when it cannot be read, why (for the page)."""
    try:
        return services.uploader_ref_of(report=report), ""
    except ServiceError as error:
        return "", error.message


def _render_detail(
    request: OrgRequest, report: Report, status: int = 200, **forms: Any
) -> HttpResponse:
    org = request.organization
    uploader_ref, unreadable = _uploader_ref(report)
    package = report.package or {}
    context: dict[str, Any] = {
        "report": report,
        "package": package,
        "detection_package": package.get("detection") or {},
        "confirmation": package.get("confirmation") or {},
        "submitted": (package.get("detection") or {}).get("submitted") or [],
        "matches": _package_matches(package),
        "uploader_ref": uploader_ref,
        "uploader_ref_unreadable": unreadable,
        "hold": services.report_hold(report=report),
        "entries": listings.reported_entries_of(report=report),
        "profiles": downloads.profile_choices(),
        "profile": services.report_settings_of(org=org).profile,
        "edit_form": forms.get("edit_form") or ReportEditForm.of(report, uploader_ref),
        "file_form": forms.get("file_form") or ReportFileForm(),
        "acknowledge_form": forms.get("acknowledge_form") or ReportAcknowledgeForm(),
        "detection_exists": report.detection_id is not None,
        "detection_created": _moment((package.get("detection") or {}).get("created")),
        "confirmed_at": _moment((package.get("confirmation") or {}).get("confirmed_at")),
    }
    return render(request, "reports/detail.html", context, status=status)


def _report(request: OrgRequest, report_id: str) -> Report:
    return selectors.get_report_for_org(org=request.organization, public_id=report_id)


@require_http_methods(["GET", "POST"])
@org_permission("reports.read", post="reports.write")
def report_detail(request: OrgRequest, org_slug: str, report_id: str) -> HttpResponse:
    """The report; a POST saves the analyst's fields of a draft."""
    report = _report(request, report_id)
    if request.method != "POST":
        return _render_detail(request, report)
    form = ReportEditForm(request.POST)
    if not form.is_valid():
        return _render_detail(request, report, status=400, edit_form=form)
    try:
        services.report_update(report=report, actor=Actor.from_request(request), **form.changes())
    except ServiceError as error:
        # A message, not a form error: a refusal of the state (a filed report) shows no form.
        messages.error(request, error.message)
        return _render_detail(request, report, status=error.status, edit_form=form)
    messages.success(request, "The report is saved.")
    return redirect("report_detail", org_slug=org_slug, report_id=report.public_id)


@require_POST
@org_permission("reports.write")
def report_mark_filed(request: OrgRequest, org_slug: str, report_id: str) -> HttpResponse:
    report = _report(request, report_id)
    form = ReportFileForm(request.POST)
    if not form.is_valid():
        return _render_detail(request, report, status=400, file_form=form)
    try:
        report = services.report_file(
            report=report,
            actor=Actor.from_request(request),
            hotline_report_id=form.cleaned_data["hotline_report_id"],
            filed_at=form.moment(),
        )
    except ServiceError as error:
        messages.error(request, error.message)
        return _render_detail(request, report, status=error.status, file_form=form)
    messages.success(
        request,
        f"Marked as filed with the hotline (report {report.hotline_report_id}); "
        "the detection is held from the retention purge.",
    )
    return redirect("report_detail", org_slug=org_slug, report_id=report.public_id)


@require_POST
@org_permission("reports.write")
def report_mark_acknowledged(request: OrgRequest, org_slug: str, report_id: str) -> HttpResponse:
    report = _report(request, report_id)
    form = ReportAcknowledgeForm(request.POST)
    if not form.is_valid():
        return _render_detail(request, report, status=400, acknowledge_form=form)
    try:
        report = services.report_acknowledge(
            report=report, actor=Actor.from_request(request), acknowledged_at=form.moment(report)
        )
    except ServiceError as error:
        messages.error(request, error.message)
        return _render_detail(request, report, status=error.status, acknowledge_form=form)
    messages.success(request, "Marked as acknowledged by the hotline.")
    return redirect("report_detail", org_slug=org_slug, report_id=report.public_id)


# --- the package: download and print ------------------------------------------------------------


@require_GET
@org_permission("reports.read")
def report_download(request: OrgRequest, org_slug: str, report_id: str) -> HttpResponse:
    """The package as a file, in ``?profile=`` (default: the organisation's hotline profile)."""
    report = _report(request, report_id)
    profile = (
        request.GET.get("profile") or services.report_settings_of(org=report.organization).profile
    )
    try:
        rendered = downloads.report_download(
            report=report, profile=profile, actor=Actor.from_request(request)
        )
    except ServiceError as error:
        messages.error(request, error.message)
        return redirect("report_detail", org_slug=org_slug, report_id=report.public_id)
    response = HttpResponse(rendered.body, content_type=rendered.content_type)
    response["Content-Disposition"] = f'attachment; filename="{rendered.filename}"'
    response["Cache-Control"] = "no-store"
    return response


@require_GET
@org_permission("reports.read")
def report_print(request: OrgRequest, org_slug: str, report_id: str) -> HttpResponse:
    """A clean page of the report's summary for printing (no sidebar)."""
    report = _report(request, report_id)
    try:
        shown = downloads.report_print(report=report, actor=Actor.from_request(request))
    except ServiceError as error:
        messages.error(request, error.message)
        return redirect("report_detail", org_slug=org_slug, report_id=report.public_id)
    response = render(request, "reports/print.html", {"report": report, "summary": shown})
    response["Cache-Control"] = "no-store"
    return response


# --- the dashboard's lag chart ------------------------------------------------------------------

# Colours of the two figures per source (the stylesheet repeats them as classes).
LAG_COLOURS = {"median": "#1f5fbf", "p90": "#b3261e"}


@dataclass(frozen=True)
class LagBar:
    kind: str  # "median" or "p90"
    days: float
    x: float
    y: float
    width: float
    height: float
    colour: str


@dataclass(frozen=True)
class LagGroup:
    row: listings.LagRow
    bars: list[LagBar]
    centre: float


@dataclass(frozen=True, kw_only=True)
class LagChart(BarPlot):
    """Per source, two bars side by side: the median and the 90th percentile lag, in days."""

    rows: list[listings.LagRow]

    @classmethod
    def of(cls, rows: list[listings.LagRow]) -> LagChart:
        peak = math.ceil(max((row.p90_days for row in rows), default=0))
        return cls(rows=rows, bands=len(rows), peak=max(peak, 1))

    @cached_property
    def groups(self) -> list[LagGroup]:
        groups = []
        half = round(self.bar_width / 2, 2)
        for index, row in enumerate(self.rows):
            x = self.bar_x(index)
            bars = []
            for offset, (kind, days) in enumerate(
                (("median", row.median_days), ("p90", row.p90_days))
            ):
                height = round(self.span(days), 2)
                bars.append(
                    LagBar(
                        kind,
                        days,
                        round(x + offset * half, 2),
                        round(self.baseline - height, 2),
                        half,
                        height,
                        LAG_COLOURS[kind],
                    )
                )
            groups.append(LagGroup(row, bars, round(x + self.bar_width / 2, 2)))
        return groups


@require_GET
@org_permission("reports.read")
def reports_lag_chart(request: OrgRequest, org_slug: str) -> HttpResponse:
    """The dashboard's report-to-listing lag per verified source (loaded into it)."""
    rows = listings.listing_lag(org=request.organization)
    context = {"rows": rows, "chart": LagChart.of(rows) if rows else None}
    return render(request, "reports/_lag_chart.html", context)
