"""API v1: dispute an entry of a community list, and read the disputes the caller raised.

``POST /api/v1/disputes`` takes the key scope ``lists:write``: disputing is a write that reaches
another organisation (its owner's audit log and dispute page), as weighty as changing one's own
lists, and a key that may only match must not. ``GET`` needs any valid key. What each dispute
carries, and the error codes, are sharing.disputes' (see its module docstring).
"""

from __future__ import annotations

from typing import Any

from django.db.models import Q
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_serializer
from rest_framework import serializers, status
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
from lists.api import SignalTypeField
from sharing import disputes
from sharing.api import ListRefSerializer
from sharing.models import Dispute

PAGE_SIZE = 100
MAX_PAGE_SIZE = 500
_BODY_SHAPE = (
    'The body must be {"list": str, "type": str, "value": str, "reason": str, '
    '"note"?: str, "reveal"?: bool}.'
)


def _create_input(request: Request) -> dict[str, Any]:
    data = request.data
    if not isinstance(data, dict):
        raise ServiceError("invalid_body", _BODY_SHAPE)
    for name in ("list", "type", "value", "reason"):
        if not isinstance(data.get(name), str):
            raise ServiceError("invalid_body", f"“{name}” is missing or not text. {_BODY_SHAPE}")
    if not isinstance(data.get("note", ""), str) or not isinstance(data.get("reveal", False), bool):
        raise ServiceError("invalid_body", _BODY_SHAPE)
    return {
        "list_public_id": data["list"],
        "signal_type": data["type"],
        "value": data["value"],
        "reason": data["reason"],
        "note": data.get("note", ""),
        "reveal": data.get("reveal", False),
    }


@extend_schema_serializer(component_name="Dispute")
class DisputeSerializer(serializers.Serializer):
    """A dispute as the organisation that raised it sees it."""

    # For the schema: the view renders disputes with RaisedDispute.as_dict.

    id = serializers.CharField()
    list = ListRefSerializer()
    type = SignalTypeField()
    value = serializers.CharField()
    reason = serializers.ChoiceField(choices=Dispute.Reason.values)
    note = serializers.CharField(allow_blank=True)
    reveal = serializers.BooleanField()
    status = serializers.ChoiceField(choices=Dispute.Status.values)
    created = IsoDateTimeField()
    resolved_at = IsoDateTimeField(allow_null=True)
    resolution_note = serializers.CharField(allow_blank=True)


class DisputesApi(OrgAPIView):
    """The serializers describe the bodies for the schema; the view reads them itself."""

    @extend_schema_serializer(component_name="DisputeCreate")
    class InputSerializer(serializers.Serializer):
        list = serializers.CharField(help_text="The id of the list holding the entry.")
        type = SignalTypeField()
        value = serializers.CharField()
        reason = serializers.ChoiceField(choices=Dispute.Reason.values)
        note = serializers.CharField(max_length=disputes.MAX_NOTE, required=False, allow_blank=True)
        reveal = serializers.BooleanField(
            default=False, help_text="Show your organisation's name to the list's owner."
        )

    @extend_schema_serializer(component_name="Disputes")
    class PageSerializer(serializers.Serializer):
        disputes = DisputeSerializer(many=True)
        next_cursor = serializers.CharField(
            allow_null=True, help_text="The cursor of the next page; null on the last page."
        )

    def get_required_scope(self) -> str | None:
        return "lists:write" if self.request.method == "POST" else None

    @extend_schema(
        operation_id="disputes_list",
        summary="The disputes the caller's organisation raised, newest first",
        parameters=[
            OpenApiParameter("status", str, enum=Dispute.Status.values),
            OpenApiParameter("cursor", str, description="next_cursor of the previous page"),
            OpenApiParameter(
                "limit", bounded_int(1, MAX_PAGE_SIZE), description="1 to 500, default 100"
            ),
            *ERROR_HEADERS,
        ],
        responses={
            200: PageSerializer,
            **error_responses({400: ["invalid_status", "bad_limit", "bad_cursor"]}),
        },
        extensions=links(
            {
                200: {
                    "NextPage": link(
                        "disputes_list",
                        "The next page (while next_cursor is not null).",
                        cursor="$response.body#/next_cursor",
                        status="$request.query.status",
                    )
                }
            }
        ),
    )
    def get(self, request: Request) -> Response:
        org = request.organization  # type: ignore[attr-defined]
        try:
            limit = int(request.query_params.get("limit", PAGE_SIZE))
        except ValueError:
            limit = 0
        if not 1 <= limit <= MAX_PAGE_SIZE:
            raise ServiceError(
                "bad_limit", f"limit must be a whole number from 1 to {MAX_PAGE_SIZE}."
            )
        raised = disputes.disputes_raised_by(org=org, status=request.query_params.get("status", ""))
        cursor = request.query_params.get("cursor", "")
        if cursor:
            # The cursor is the id of the last dispute of the previous page.
            last = disputes.disputes_raised_by(org=org).filter(public_id=cursor).first()
            if last is None:
                raise ServiceError("bad_cursor", "cursor is not a next_cursor this API gave out.")
            raised = raised.filter(
                Q(created__lt=last.created) | Q(created=last.created, id__lt=last.pk)
            )
        page = list(raised[: limit + 1])
        more = len(page) > limit
        page = page[:limit]
        return Response(
            {
                "disputes": [disputes.raised_view(d).as_dict() for d in page],
                "next_cursor": page[-1].public_id if more else None,
            }
        )

    @extend_schema(
        operation_id="disputes_create",
        summary="Dispute an entry of a community list",
        description=(
            "Body: list (the list's id), type, value, reason (not_csam, wrong_category, "
            "low_quality, other), note (optional, at most 2,000 characters), reveal (optional: "
            "show your organisation's name to the list's owner; default false). Errors: 404 "
            "not_found (list not in your catalogue), 400 own_list, 400 invalid_reason, "
            "400 note_too_long, 400 hash parse errors, 404 entry_not_found, 409 "
            "already_disputed (details.dispute is your open dispute's id)."
        ),
        request={"application/json": InputSerializer},
        parameters=ERROR_HEADERS,
        responses={
            201: DisputeSerializer,
            **error_responses(
                {
                    400: [
                        "invalid_body",
                        "own_list",
                        "invalid_reason",
                        "invalid_note",
                        "note_too_long",
                        "unknown_type",
                        "bad_characters",
                        "wrong_length",
                        "empty_value",
                    ],
                    403: ["permission_denied", "org_not_approved"],
                    404: ["not_found", "entry_not_found"],
                    409: ["already_disputed"],
                },
                body=True,
            ),
        },
        extensions=links(
            {
                201: {
                    "GetList": link(
                        "list_retrieve", "The disputed list.", list_id="$response.body#/list/id"
                    )
                }
            }
        ),
    )
    def post(self, request: Request) -> Response:
        dispute = disputes.dispute_create(
            org=request.organization,  # type: ignore[attr-defined]
            actor=Actor.from_request(request),
            **_create_input(request),
        )
        return Response(disputes.raised_view(dispute).as_dict(), status=status.HTTP_201_CREATED)
