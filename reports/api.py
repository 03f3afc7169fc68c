"""API v1: the organisation's reports to NCMEC or a hotline (issue 21), scope ``reports``.

The very services the web pages call (reports.services): open a report from a detection
confirmed as CSAM, change a draft, record its filing and the hotline's acknowledgement, download
it in a hotline profile (reports.profiles). Another organisation's report, or detection, is the
same 404 as a missing one. A report shows its uploader reference decrypted: it is the
organisation's own record, answered only to its own key with scope ``reports`` (never audited,
never in a webhook).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.http import HttpResponse
from django.utils import timezone
from django.utils.dateparse import parse_datetime
from django.utils.http import content_disposition_header
from drf_spectacular.extensions import OpenApiSerializerExtension
from drf_spectacular.utils import (
    OpenApiParameter,
    OpenApiResponse,
    extend_schema,
    extend_schema_serializer,
)
from rest_framework import serializers
from rest_framework.renderers import BaseRenderer
from rest_framework.request import Request
from rest_framework.response import Response

from hub.api_base import OrgAPIView
from hub.api_schema import (
    ERROR_HEADERS,
    IsoDateTimeField,
    bounded_int,
    error_responses,
    link,
    links,
)
from hub.audit import Actor
from hub.errors import ServiceError
from hub.models import Organization
from matching import review
from reports import downloads, listings, profiles, selectors, services
from reports.models import Report

STATES = tuple(Report.State.values)
INCIDENT_TYPES = tuple(Report.IncidentType.values)
PROFILE_NAMES = tuple(sorted(profiles.PROFILES))
OPEN_FIELDS = ("detection", *services.EDITABLE)
TRANSITIONS = {
    Report.State.FILED: ("state", "hotline_report_id", "filed_at"),
    Report.State.ACKNOWLEDGED: ("state", "acknowledged_at"),
}


# --- serializers (the schema's shapes) ----------------------------------------------------------


@extend_schema_serializer(component_name="ReportListing")
class ListingSerializer(serializers.Serializer):
    # Popped into the declared fields by DRF's metaclass: it does not replace Field.source.
    source = serializers.CharField(help_text="The verified source's name.")  # type: ignore[assignment]
    list = serializers.CharField(source="list_id", help_text="The source's list id.")
    listed_at = IsoDateTimeField(help_text="When the source's list came to hold the hash.")
    before_report = serializers.BooleanField(
        help_text="Listed before the report was opened (says nothing of the report's lag)."
    )


@extend_schema_serializer(component_name="ReportedEntry")
class ReportedEntrySerializer(serializers.Serializer):
    list = serializers.CharField(source="list_id", help_text="The own CSAM list's id.")
    entry = serializers.CharField(source="entry_id", help_text="The entry's id.")
    type = serializers.CharField(source="signal_type")
    value = serializers.CharField()
    listed = ListingSerializer(many=True, help_text="The verified sources that list the hash.")


@extend_schema_serializer(component_name="Report")
class ReportSerializer(serializers.Serializer):
    id = serializers.CharField(source="public_id")
    state = serializers.ChoiceField(choices=STATES)
    detection = serializers.CharField(
        source="detection_ref", help_text="The detection reported (it may since be purged)."
    )
    incident_type = serializers.ChoiceField(choices=INCIDENT_TYPES)
    content_ref = serializers.CharField(
        allow_blank=True, help_text="The platform's reference to the content it must preserve."
    )
    uploader_ref = serializers.CharField(
        allow_blank=True, help_text="The uploader as the platform knows it (stored encrypted)."
    )
    notes = serializers.CharField(allow_blank=True)
    file_viewed_by_esp = serializers.BooleanField(
        allow_null=True, help_text="Whether the platform's staff viewed the file; null: not said."
    )
    hotline_report_id = serializers.CharField(
        allow_null=True, help_text="The hotline's id of the report, once filed."
    )
    filed_at = IsoDateTimeField(allow_null=True)
    acknowledged_at = IsoDateTimeField(allow_null=True)
    created = IsoDateTimeField()
    updated = IsoDateTimeField()
    hold = IsoDateTimeField(
        allow_null=True,
        help_text="Until when the preservation hold its filing placed keeps the detection and "
        "the report; null when none is active.",
    )
    entries = ReportedEntrySerializer(
        many=True, help_text="The own CSAM list's entries of the reported hashes."
    )
    package = serializers.DictField(
        help_text="What the detection found, copied when the report was opened (the download "
        "is built from it)."
    )


@extend_schema_serializer(component_name="ReportsPage")
class ReportsPageSerializer(serializers.Serializer):
    reports = ReportSerializer(many=True)
    next_cursor = serializers.CharField(
        allow_null=True, help_text="The cursor of the next page; null on the last page."
    )


@extend_schema_serializer(component_name="ReportOpen")
class OpenInputSerializer(serializers.Serializer):
    detection = serializers.CharField(help_text="A detection confirmed as CSAM.")
    incident_type = serializers.ChoiceField(choices=INCIDENT_TYPES, required=False)
    uploader_ref = serializers.CharField(
        required=False, allow_blank=True, max_length=services.MAX_UPLOADER_REF
    )
    notes = serializers.CharField(required=False, allow_blank=True, max_length=services.MAX_NOTES)
    file_viewed_by_esp = serializers.BooleanField(required=False, allow_null=True)


@extend_schema_serializer(component_name="ReportChange")
class ChangeInputSerializer(serializers.Serializer):
    incident_type = serializers.ChoiceField(
        choices=INCIDENT_TYPES, required=False, help_text="A draft's fields: any of these four."
    )
    uploader_ref = serializers.CharField(
        required=False, allow_blank=True, max_length=services.MAX_UPLOADER_REF
    )
    notes = serializers.CharField(required=False, allow_blank=True, max_length=services.MAX_NOTES)
    file_viewed_by_esp = serializers.BooleanField(required=False, allow_null=True)
    state = serializers.ChoiceField(
        choices=[Report.State.FILED.value, Report.State.ACKNOWLEDGED.value],
        required=False,
        help_text="A state change, alone with its fields: filed (hotline_report_id, filed_at) "
        "or acknowledged (acknowledged_at).",
    )
    hotline_report_id = serializers.CharField(
        required=False, max_length=services.MAX_HOTLINE_REPORT_ID
    )
    filed_at = IsoDateTimeField(required=False, help_text="Default: now.")
    acknowledged_at = IsoDateTimeField(required=False, help_text="Default: now.")


class ReportFileSerializer(serializers.Serializer):
    """The download: the report as its profile renders it (described by the extension below)."""


class ReportFileSchema(OpenApiSerializerExtension):
    target_class = ReportFileSerializer

    def get_name(self, auto_schema: Any = None, direction: Any = None) -> str:
        return "ReportFile"

    def map_serializer(self, auto_schema: Any, direction: Any) -> dict[str, Any]:
        # No type: the profile decides the format (generic: a JSON document; ncmec: XML).
        return {
            "description": "The report rendered by its hotline profile, as an attachment: its "
            "media type (Content-Type) and file name (Content-Disposition) are the profile's."
        }


# --- reading the request ------------------------------------------------------------------------


def _org(request: Request) -> Organization:
    return request.organization  # type: ignore[attr-defined]


def _body(request: Request, example: str) -> dict[str, Any]:
    body = request.data
    if not isinstance(body, dict):
        raise ServiceError("invalid_body", f"The body must be a JSON object {example}.")
    return body


def _unknown(body: dict[str, Any], allowed: tuple[str, ...]) -> None:
    unknown = sorted(str(name) for name in body if name not in allowed)
    if unknown:
        raise ServiceError(
            "unknown_field",
            f"Unknown field(s): {', '.join(unknown)}; allowed here: {', '.join(allowed)}.",
            {"fields": unknown, "allowed": list(allowed)},
        )


def _moment(value: Any, name: str) -> datetime | None:
    if value is None:
        return None
    parsed = parse_datetime(value) if isinstance(value, str) else None
    if parsed is None or timezone.is_naive(parsed):
        raise ServiceError(
            f"invalid_{name}",
            f"{name} must be an ISO 8601 date and time with an offset (2026-03-18T16:30:00Z).",
        )
    return parsed


def _limit(raw: str | None) -> int:
    if raw is None:
        return selectors.PAGE_SIZE
    if not raw.isascii() or not raw.isdigit() or not 1 <= int(raw) <= selectors.MAX_PAGE_SIZE:
        raise ServiceError(
            "bad_limit", f"limit must be a whole number from 1 to {selectors.MAX_PAGE_SIZE}."
        )
    return int(raw)


def _state(raw: str | None) -> str:
    if raw is None or raw == "":
        return ""
    if raw not in STATES:
        raise ServiceError(
            "bad_filter", f"state must be one of: {', '.join(STATES)}.", {"allowed": list(STATES)}
        )
    return raw


def report_data(report: Report) -> dict[str, Any]:
    """The report as the API shows it to its own organisation (uploader reference decrypted)."""
    hold = services.report_hold(report=report)
    return {
        "public_id": report.public_id,
        "state": report.state,
        "detection_ref": report.detection_ref,
        "incident_type": report.incident_type,
        "content_ref": report.content_ref,
        "uploader_ref": services.uploader_ref_of(report=report),
        "notes": report.notes,
        "file_viewed_by_esp": report.file_viewed_by_esp,
        "hotline_report_id": report.hotline_report_id or None,
        "filed_at": report.filed_at,
        "acknowledged_at": report.acknowledged_at,
        "created": report.created,
        "updated": report.updated,
        "hold": hold.until if hold is not None else None,
        "entries": listings.reported_entries_of(report=report),
        "package": report.package,
    }


# --- the views ----------------------------------------------------------------------------------

_REPORT_ID = OpenApiParameter("report_id", str, OpenApiParameter.PATH)
_GET_REPORT = link("report_get", "The report.", report_id="$response.body#/id")
_OPEN_ERRORS = [
    "invalid_body",
    "unknown_field",
    "invalid_detection",
    "invalid_incident_type",
    "invalid_uploader_ref",
    "uploader_ref_too_long",
    "invalid_notes",
    "notes_too_long",
    "invalid_file_viewed_by_esp",
]
_CHANGE_ERRORS = [
    "invalid_body",
    "unknown_field",
    "invalid_state",
    "invalid_incident_type",
    "invalid_uploader_ref",
    "uploader_ref_too_long",
    "invalid_notes",
    "notes_too_long",
    "invalid_file_viewed_by_esp",
    "invalid_hotline_report_id",
    "invalid_filed_at",
    "filed_at_in_future",
    "invalid_acknowledged_at",
    "acknowledged_at_in_future",
    "acknowledged_before_filing",
]


class ReportsApi(OrgAPIView):
    required_scope = "reports"

    @extend_schema(
        operation_id="reports_list",
        summary="A page of the organisation's reports, newest first (reports)",
        parameters=[
            OpenApiParameter("state", str, enum=STATES),
            OpenApiParameter("cursor", str, description="next_cursor of the previous page"),
            OpenApiParameter(
                "limit",
                bounded_int(1, selectors.MAX_PAGE_SIZE),
                description=f"1 to {selectors.MAX_PAGE_SIZE}, default {selectors.PAGE_SIZE}",
            ),
            *ERROR_HEADERS,
        ],
        responses={
            200: ReportsPageSerializer,
            **error_responses(
                {
                    400: ["bad_filter", "bad_limit", "bad_cursor"],
                    403: ["permission_denied"],
                    503: ["encryption_unavailable"],
                }
            ),
        },
        extensions=links(
            {
                200: {
                    "NextPage": link(
                        "reports_list",
                        "The next page (while next_cursor is not null).",
                        cursor="$response.body#/next_cursor",
                    )
                }
            }
        ),
    )
    def get(self, request: Request) -> Response:
        query = request.query_params
        page = selectors.reports_page(
            org=_org(request),
            state=_state(query.get("state")),
            cursor=query.get("cursor", ""),
            limit=_limit(query.get("limit")),
        )
        return Response(
            ReportsPageSerializer(
                {
                    "reports": [report_data(report) for report in page.reports],
                    "next_cursor": page.next_cursor,
                }
            ).data
        )

    @extend_schema(
        operation_id="report_open",
        summary="Open a draft report about a detection confirmed as CSAM (reports)",
        parameters=ERROR_HEADERS,
        request={"application/json": OpenInputSerializer},
        responses={
            201: ReportSerializer,
            **error_responses(
                {
                    400: _OPEN_ERRORS,
                    403: ["permission_denied"],
                    404: ["not_found"],
                    409: ["not_confirmed", "confirmed_as_se", "already_reported"],
                    503: ["encryption_unavailable"],
                },
                body=True,
            ),
        },
        extensions=links({201: {"GetReport": _GET_REPORT}}),
    )
    def post(self, request: Request) -> Response:
        body = _body(request, '{"detection": …}')
        _unknown(body, OPEN_FIELDS)
        detection_id = body.get("detection")
        if not isinstance(detection_id, str) or not detection_id:
            raise ServiceError("invalid_detection", "detection must be a detection's id.")
        detection = review.get_detection_for_org(org=_org(request), public_id=detection_id)
        report = services.report_open(
            detection=detection,
            actor=Actor.from_request(request),
            incident_type=body.get("incident_type", Report.IncidentType.CHILD_PORNOGRAPHY),
            uploader_ref=body.get("uploader_ref", ""),
            notes=body.get("notes", ""),
            file_viewed_by_esp=body.get("file_viewed_by_esp"),
        )
        return Response(ReportSerializer(report_data(report)).data, status=201)


class ReportApi(OrgAPIView):
    required_scope = "reports"

    @extend_schema(
        operation_id="report_get",
        summary="One of the organisation's reports (reports)",
        parameters=[_REPORT_ID, *ERROR_HEADERS],
        responses={
            200: ReportSerializer,
            **error_responses(
                {
                    403: ["permission_denied"],
                    404: ["not_found"],
                    503: ["encryption_unavailable"],
                }
            ),
        },
    )
    def get(self, request: Request, report_id: str) -> Response:
        report = selectors.get_report_for_org(org=_org(request), public_id=report_id)
        return Response(ReportSerializer(report_data(report)).data)

    @extend_schema(
        operation_id="report_change",
        summary="Change a draft's fields, or record its filing or acknowledgement (reports)",
        parameters=[_REPORT_ID, *ERROR_HEADERS],
        request={"application/json": ChangeInputSerializer},
        responses={
            200: ReportSerializer,
            **error_responses(
                {
                    400: _CHANGE_ERRORS,
                    403: ["permission_denied"],
                    404: ["not_found"],
                    409: ["report_not_draft", "invalid_transition"],
                    503: ["encryption_unavailable"],
                },
                body=True,
            ),
        },
    )
    def patch(self, request: Request, report_id: str) -> Response:
        report = selectors.get_report_for_org(org=_org(request), public_id=report_id)
        body = _body(request, '{"notes": …} or {"state": "filed", "hotline_report_id": …}')
        actor = Actor.from_request(request)
        if "state" not in body:
            _unknown(body, services.EDITABLE)
            report = services.report_update(report=report, actor=actor, **body)
        elif body["state"] == Report.State.FILED:
            _unknown(body, TRANSITIONS[Report.State.FILED])
            report = services.report_file(
                report=report,
                actor=actor,
                hotline_report_id=body.get("hotline_report_id"),  # type: ignore[arg-type]
                filed_at=_moment(body.get("filed_at"), "filed_at"),
            )
        elif body["state"] == Report.State.ACKNOWLEDGED:
            _unknown(body, TRANSITIONS[Report.State.ACKNOWLEDGED])
            report = services.report_acknowledge(
                report=report,
                actor=actor,
                acknowledged_at=_moment(body.get("acknowledged_at"), "acknowledged_at"),
            )
        else:
            raise ServiceError(
                "invalid_state",
                "state may be changed to filed or acknowledged (a draft is opened with POST).",
                {"allowed": [Report.State.FILED, Report.State.ACKNOWLEDGED]},
            )
        return Response(ReportSerializer(report_data(report)).data)


class ReportDownloadApi(OrgAPIView):
    required_scope = "reports"

    def perform_content_negotiation(
        self, request: Request, force: bool = False
    ) -> tuple[BaseRenderer, str]:
        # The file has the profile's media type whatever the client accepts (XML, say); an
        # error is JSON, like every error of the API.
        return super().perform_content_negotiation(request, force=True)

    @extend_schema(
        operation_id="report_download",
        summary="The report rendered in a hotline profile, as an attachment; audited (reports)",
        parameters=[
            _REPORT_ID,
            OpenApiParameter(
                "profile",
                str,
                enum=PROFILE_NAMES,
                description="Default: the organisation's profile (its reports settings).",
            ),
            *ERROR_HEADERS,
        ],
        responses={
            (200, "*/*"): OpenApiResponse(
                ReportFileSerializer, description="The rendered report, as an attachment."
            ),
            **error_responses(
                {
                    400: ["unknown_profile"],
                    403: ["permission_denied"],
                    404: ["not_found"],
                    503: ["encryption_unavailable"],
                }
            ),
        },
    )
    def get(self, request: Request, report_id: str) -> HttpResponse:
        org = _org(request)
        report = selectors.get_report_for_org(org=org, public_id=report_id)
        profile = (
            request.query_params.get("profile") or services.report_settings_of(org=org).profile
        )
        rendered = downloads.report_download(
            report=report, profile=profile, actor=Actor.from_request(request)
        )
        response = HttpResponse(rendered.body, content_type=rendered.content_type)
        response["Content-Disposition"] = (
            content_disposition_header(as_attachment=True, filename=rendered.filename)
            or "attachment"
        )
        response["Cache-Control"] = "no-store"
        return response
