"""API v1: match hashes, match an image, the delta export feed (DESIGN.md, "API contract v1")."""

from __future__ import annotations

import json
from typing import Any

from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework.request import Request
from rest_framework.response import Response

from hub.api_base import OrgAPIView
from hub.audit import Actor, audit
from hub.errors import ServiceError
from hub.models import ApiKey
from lists.changes import SEQUENCE_LAST_SQL
from matching import selectors, services


def _change_number(request: Request) -> int | None:
    key = request.auth
    return int(key.lookup_also) if isinstance(key, ApiKey) and key.lookup_also is not None else None


def _body(request: Request) -> dict[str, Any]:
    if not isinstance(request.data, dict):
        raise ServiceError("invalid_body", 'The body must be a JSON object {"hashes": [...]}.')
    return request.data


def _form_max_matches(raw: object) -> object:
    """A multipart form's ``max_matches`` (text) as the number the match service checks."""
    if raw is None or raw == "":
        return None
    if isinstance(raw, str) and raw.strip().isdigit() and len(raw.strip()) <= 6:
        return int(raw.strip())
    raise ServiceError(
        "invalid_max_matches", "max_matches must be a whole number such as 20, sent as text."
    )


class MatchApi(OrgAPIView):
    required_scope = "match"
    # The index must reflect every change committed before the request (read-your-writes):
    # reading the change number with the API key saves a database round trip.
    key_lookup_also = SEQUENCE_LAST_SQL

    @extend_schema(
        operation_id="match",
        summary="Match up to 1,000 hashes against every list the organisation may match",
        request=dict,
        responses=dict,
    )
    def post(self, request: Request) -> Response:
        body = _body(request)
        if not isinstance(body.get("hashes"), list):
            raise ServiceError(
                "invalid_body", 'The body must be {"hashes": [{"type": …, "value": …}, …]}.'
            )
        outcome = services.match_hashes(
            org=request.organization,  # type: ignore[attr-defined]
            items=body["hashes"],
            actor=Actor.from_request(request),
            max_distance=body.get("max_distance"),
            max_matches=body.get("max_matches"),
            content_ref=body.get("content_ref"),
            change_number=_change_number(request),
        )
        return Response(outcome.as_dict())


class MatchImageApi(OrgAPIView):
    required_scope = "match"
    # The index must reflect every change committed before the request (read-your-writes):
    # reading the change number with the API key saves a database round trip.
    key_lookup_also = SEQUENCE_LAST_SQL

    @extend_schema(
        operation_id="match_image",
        summary="Hash an image in memory and match every hash computed from it",
        request={
            "multipart/form-data": {
                "type": "object",
                "properties": {
                    "image": {"type": "string", "format": "binary"},
                    "content_ref": {"type": "string"},
                    "max_distance": {"type": "string", "description": 'JSON, e.g. {"pdq": 20}'},
                },
                "required": ["image"],
            }
        },
        responses=dict,
    )
    def post(self, request: Request) -> Response:
        upload = request.FILES.get("image")
        if upload is None:
            raise ServiceError(
                "image_missing", "Send the image as a multipart form field named 'image'."
            )
        raw_distance = request.data.get("max_distance")
        max_distance = None
        if raw_distance:
            try:
                max_distance = json.loads(raw_distance)
            except (TypeError, ValueError):
                raise ServiceError(
                    "invalid_max_distance",
                    'max_distance must be a JSON object such as {"pdq": 20}.',
                ) from None
        outcome = services.match_image(
            org=request.organization,  # type: ignore[attr-defined]
            data=upload.read(),
            actor=Actor.from_request(request),
            max_distance=max_distance,
            max_matches=_form_max_matches(request.data.get("max_matches")),
            content_ref=request.data.get("content_ref"),
            change_number=_change_number(request),
        )
        return Response(outcome.as_dict())


class ExportApi(OrgAPIView):
    required_scope = "export"

    @extend_schema(
        operation_id="export",
        summary="The delta feed (adds and removes, in change order) of everything matchable",
        parameters=[
            OpenApiParameter("cursor", str, description="next_cursor of the previous page"),
            OpenApiParameter("limit", int, description="1 to 10,000, default 1,000"),
        ],
        responses=dict,
    )
    def get(self, request: Request) -> Response:
        try:
            limit = int(request.query_params.get("limit", selectors.EXPORT_PAGE_SIZE))
        except ValueError:
            raise ServiceError(
                "bad_limit", "limit must be a whole number from 1 to 10,000."
            ) from None
        org = request.organization  # type: ignore[attr-defined]
        cursor = request.query_params.get("cursor", "")
        page = selectors.export_page(org=org, cursor=cursor, limit=limit)
        # An export is a sensitive read (DESIGN.md, invariant 5).
        audit(
            actor=Actor.from_request(request),
            action="export.read",
            organization=org,
            target_type="export",
            metadata={"cursor": cursor, "items": len(page.items), "next_cursor": page.next_cursor},
        )
        return Response(
            {"items": page.items, "next_cursor": page.next_cursor, "has_more": page.has_more}
        )
