"""API v1: match hashes, match an image, the delta export feed (DESIGN.md, "API contract v1")."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from drf_spectacular.utils import (
    OpenApiParameter,
    extend_schema,
    extend_schema_field,
    extend_schema_serializer,
)
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response

from hub.api_base import OrgAPIView
from hub.api_schema import ERROR_HEADERS, bounded_int, error_responses, link, links
from hub.audit import Actor, audit
from hub.errors import ServiceError
from hub.lib.jsonsafe import loads_bounded
from hub.models import ApiKey
from hub.quotas import ImageMatchQuotaThrottle
from hub.uploads import UploadTooLargeError, cap_uploads
from lists.api import SignalTypeField
from lists.changes import SEQUENCE_LAST_SQL
from lists.hashtypes import all_signal_types
from lists.hashtypes.pdq import DIHEDRAL_TRANSFORMS
from matching import selectors, services
from sharing.api import ListRefSerializer


def _change_number(request: Request) -> int | None:
    key = request.auth
    return int(key.lookup_also) if isinstance(key, ApiKey) and key.lookup_also is not None else None


def _body(request: Request) -> dict[str, Any]:
    if not isinstance(request.data, dict):
        raise ServiceError("invalid_body", 'The body must be a JSON object {"hashes": [...]}.')
    return request.data


# --- the bodies, for the schema: the views read and answer them through matching.services ----

MAX_CONTENT_REF = 500
MAX_MATCHES = settings.HASHHUB_MAX_MATCHES_PER_HASH


@extend_schema_field(
    {
        "type": "object",
        "properties": {
            t.name: {"type": "integer", "minimum": 0, "maximum": t.max_distance}
            for t in all_signal_types()
        },
        "additionalProperties": False,
        "description": "Per signal type, the largest distance to match at, at most the type's "
        "max_distance (GET /api/v1/hashtypes); the type's default_max_distance if absent.",
    },
    component_name="MaxDistance",
)
class MaxDistanceField(serializers.DictField):
    pass


@extend_schema_serializer(component_name="HashQuery")
class HashQuerySerializer(serializers.Serializer):
    type = SignalTypeField()
    value = serializers.CharField()


@extend_schema_serializer(component_name="MatchRequest")
class MatchInputSerializer(serializers.Serializer):
    hashes = serializers.ListField(
        child=HashQuerySerializer(), min_length=1, max_length=services.MAX_HASHES
    )
    max_distance = MaxDistanceField(required=False, allow_null=True)
    content_ref = serializers.CharField(
        max_length=MAX_CONTENT_REF,
        required=False,
        allow_null=True,
        allow_blank=True,
        help_text="Your reference for the content, kept with the detection.",
    )
    max_matches = serializers.IntegerField(
        min_value=1,
        max_value=MAX_MATCHES,
        default=MAX_MATCHES,
        required=False,
        help_text="At most this many matches per submitted hash, closest first.",
    )


@extend_schema_field(
    {
        "type": "string",
        "nullable": True,
        "description": "When the entry was added: the moment (ISO 8601 date-time) in the "
        "caller's own lists, the day (YYYY-MM-DD, UTC) in an open community list or a verified "
        "source's, null in another owner's anonymous list (the day could pair it with the "
        "owner's other lists).",
    }
)
class EntryAddedField(serializers.CharField):
    pass


class ProvenanceSerializer(serializers.Serializer):
    """An entry's provenance, as far as the caller may see it (the same four fields on every
    match and export item; empty or null where the caller may not see)."""

    labels = serializers.ListField(
        child=serializers.CharField(),
        help_text="All labels in the caller's own lists and verified sources (their A1-B2 "
        "classification); in another organisation's list only when its owner shares its "
        "classification, and then for an anonymous list the A1, A2, B1, B2 labels only, never "
        "free tags. Empty otherwise.",
    )
    added = EntryAddedField(allow_null=True)
    record_id = serializers.CharField(
        allow_null=True,
        help_text="Verified sources only: the upstream record's id (null while no keyed record "
        "holds the hash, and for other tiers).",
    )
    verification = serializers.CharField(
        allow_null=True,
        help_text="Verified sources only: how the source verifies its entries (null otherwise, "
        "or when the source does not say).",
    )


@extend_schema_serializer(component_name="Match")
class MatchSerializer(ProvenanceSerializer):
    list = ListRefSerializer()
    distance = serializers.IntegerField(min_value=0)
    matched_value = serializers.CharField()
    corroboration = serializers.IntegerField(
        min_value=0,
        help_text="How many other holders, among the lists the caller may match other than its "
        "own, hold the hash.",
    )
    disputed = serializers.BooleanField()
    held = serializers.BooleanField(
        help_text="True for a community match of a hash held for a sudden jump in its match "
        "rate across the hub: review it rather than act on it until hub staff release or "
        "retract it. Always false for the caller's own lists and verified sources."
    )
    action = serializers.ChoiceField(
        choices=["block", "review", "none"],
        help_text="What the organisation's match policy recommends for this match: the action "
        "of its first rule the match fits, else its default (review); never block for a held "
        "hash.",
    )
    transform = serializers.ChoiceField(
        choices=[*DIHEDRAL_TRANSFORMS],  # not list(): the class has a field named list
        required=False,
        help_text="match/image with dihedral=true: how the upload is turned from the listed "
        "picture.",
    )
    orientation = serializers.ChoiceField(
        choices=["displayed", "stored"],
        required=False,
        help_text="match/image of a picture with an EXIF orientation: which of its two hashes "
        "matched.",
    )


@extend_schema_serializer(component_name="HashError")
class HashErrorSerializer(serializers.Serializer):
    code = serializers.CharField()
    message = serializers.CharField()


@extend_schema_serializer(component_name="MatchResult")
class MatchResultSerializer(serializers.Serializer):
    type = serializers.CharField(
        allow_blank=True, help_text="The type's name once parsed; as submitted otherwise."
    )
    value = serializers.CharField(
        allow_blank=True, help_text="The canonical value once parsed; as submitted otherwise."
    )
    error = HashErrorSerializer(allow_null=True, help_text="Why the hash was not matched.")
    matches = serializers.ListField(
        child=MatchSerializer(),
        max_length=MAX_MATCHES,
        help_text="Closest first, at most max_matches of them.",
    )
    match_count = serializers.IntegerField(
        min_value=0,
        help_text="How many matches there were before max_matches cut them.",
    )
    truncated = serializers.BooleanField(help_text="Whether max_matches left matches out.")
    allow_listed = serializers.BooleanField(
        required=False, help_text="Present (true) when the organisation's allow list holds it."
    )


@extend_schema_serializer(component_name="MatchResponse")
class MatchOutputSerializer(serializers.Serializer):
    results = MatchResultSerializer(many=True)
    detection = serializers.CharField(
        allow_null=True, help_text="The id of the detection recorded, when anything matched."
    )


@extend_schema_serializer(component_name="ComputedHash")
class ComputedHashSerializer(serializers.Serializer):
    value = serializers.CharField()
    quality = serializers.IntegerField(
        min_value=0, max_value=100, required=False, help_text="PDQ only."
    )


@extend_schema_serializer(component_name="ImageMatchResponse")
class ImageMatchOutputSerializer(MatchOutputSerializer):
    hashes = serializers.DictField(
        child=ComputedHashSerializer(), help_text="Each hash computed from the image, by type."
    )


@extend_schema_serializer(component_name="ExportItem")
class ExportItemSerializer(ProvenanceSerializer):
    """A change of the feed, with its entry's provenance (adds and removes alike)."""

    seq = serializers.IntegerField(min_value=1)
    op = serializers.ChoiceField(choices=["add", "remove"])
    type = SignalTypeField()
    value = serializers.CharField()
    list = ListRefSerializer()


@extend_schema_serializer(component_name="ExportPage")
class ExportOutputSerializer(serializers.Serializer):
    items = ExportItemSerializer(many=True)
    next_cursor = serializers.CharField(
        help_text="Where the next page starts; on an empty page the same cursor (poll it again)."
    )
    has_more = serializers.BooleanField()


_MATCH_ERRORS = {
    400: [
        "invalid_body",
        "too_many_hashes",
        "invalid_max_distance",
        "max_distance_too_large",
        "invalid_max_matches",
        "max_matches_too_large",
        "unknown_type",
        "invalid_content_ref",
    ],
    403: ["permission_denied"],
}


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
        request={"application/json": MatchInputSerializer},
        parameters=ERROR_HEADERS,
        responses={200: MatchOutputSerializer, **error_responses(_MATCH_ERRORS, body=True)},
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
    # Beside the per-key rate: the organisation's image matches per minute (hub.quotas).
    throttle_classes = (*OrgAPIView.throttle_classes, ImageMatchQuotaThrottle)
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
                    "content_ref": {"type": "string", "maxLength": MAX_CONTENT_REF},
                    "max_distance": {"type": "string", "description": 'JSON, e.g. {"pdq": 20}'},
                    "max_matches": {
                        "type": "string",
                        "pattern": "^[0-9]{1,6}$",
                        "description": f"1 to {MAX_MATCHES}: at most this many matches per "
                        "hash, closest first.",
                    },
                    "dihedral": {
                        "type": "string",
                        "enum": ["true", "false"],
                        "description": "true: also match the PDQ of the image's 7 rotations and "
                        'mirrors; each match then says which ("transform": "rotate90").',
                    },
                },
                "required": ["image"],
            }
        },
        parameters=ERROR_HEADERS,
        responses={
            200: ImageMatchOutputSerializer,
            **error_responses(
                {
                    **_MATCH_ERRORS,
                    400: [
                        *_MATCH_ERRORS[400],
                        "image_missing",
                        "image_unreadable",
                        "invalid_dihedral",
                    ],
                    413: ["image_too_large", "image_too_complex"],
                    429: ["rate_limited"],
                    503: ["image_decoder_unavailable"],
                },
                body=True,
            ),
        },
    )
    def post(self, request: Request) -> Response:
        limit = settings.HASHHUB_MAX_UPLOAD_BYTES
        try:
            # Refused from its declared length before the body is read, else as soon as the
            # image passes the image limit while it streams in (not the hash files' 100 MB).
            cap_uploads(request._request, limit)
            upload = request.FILES.get("image")
        except UploadTooLargeError as error:
            details = {"max_bytes": limit, "declared_bytes": error.declared}
            raise ServiceError("image_too_large", error.message, details, status=413) from None
        if upload is None:
            raise ServiceError(
                "image_missing", "Send the image as a multipart form field named 'image'."
            )
        raw_distance = request.data.get("max_distance")
        max_distance = None
        if raw_distance:
            try:
                # Bounded: a few kilobytes of brackets made json.loads raise RecursionError.
                max_distance = loads_bounded(raw_distance, max_depth=4, max_bytes=4096)
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
            dihedral=request.data.get("dihedral"),
        )
        return Response(outcome.as_dict())


class ExportApi(OrgAPIView):
    required_scope = "export"

    @extend_schema(
        operation_id="export",
        summary="The delta feed (adds and removes, in change order) of everything matchable",
        parameters=[
            OpenApiParameter("cursor", str, description="next_cursor of the previous page"),
            OpenApiParameter(
                "limit",
                bounded_int(1, selectors.EXPORT_MAX_PAGE_SIZE),
                description="1 to 10,000, default 1,000",
            ),
            *ERROR_HEADERS,
        ],
        responses={
            200: ExportOutputSerializer,
            **error_responses({400: ["bad_limit", "bad_cursor"], 403: ["permission_denied"]}),
        },
        extensions=links(
            {
                200: {
                    "NextPage": link(
                        "export", "The next page of the feed.", cursor="$response.body#/next_cursor"
                    )
                }
            }
        ),
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
