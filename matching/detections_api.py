"""API v1: the organisation's detections and their review (issue 19), scope ``review``.

The same rules as the web review queue: the filters and selectors of matching.review, and the
very services the web UI calls to confirm, mark a false positive or dismiss (each audited, each
queueing a ``detection.reviewed`` webhook event). Another organisation's detection is the same
404 as a missing one. A detection may be reviewed again, as in the UI: the new outcome replaces
the old one (confirming twice adds nothing twice).
"""

from __future__ import annotations

from typing import Any

from django.http import Http404
from django.utils import timezone
from drf_spectacular.utils import (
    OpenApiParameter,
    extend_schema,
    extend_schema_field,
    extend_schema_serializer,
)
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
from hub.models import Organization
from lists.api import CategoryField
from lists.models import HashList
from matching import preservation, review, review_links
from matching.models import Detection, PreservationHold
from sharing.api import TierField

ACTIONS = ("confirm", "false_positive", "dismiss")
CATEGORIES = tuple(HashList.Category.values)
STATUSES = tuple(Detection.Status.values)
FILTERS = {"status": STATUSES, "tier": review.TIERS, "category": CATEGORIES}
FLAGS = ("shadow", "retracted", "retroactive")


@extend_schema_field({"type": "string", "enum": list(ACTIONS)}, component_name="ReviewAction")
class ReviewActionField(serializers.ChoiceField):
    """What a review does: ``confirm``, ``false_positive`` or ``dismiss``."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(choices=ACTIONS, **kwargs)


@extend_schema_serializer(component_name="SubmittedHash")
class SubmittedHashSerializer(serializers.Serializer):
    type = serializers.CharField()
    value = serializers.CharField()


@extend_schema_serializer(component_name="Preservation")
class PreservationSerializer(serializers.Serializer):
    held = serializers.BooleanField(
        help_text="A preservation hold keeps it (and its delivery logs and kept hashes) from "
        "every retention purge now."
    )
    until = IsoDateTimeField(
        allow_null=True, help_text="The latest end among its active holds; null when not held."
    )


@extend_schema_serializer(component_name="Detection")
class DetectionSerializer(serializers.Serializer):
    id = serializers.CharField(source="public_id")
    created = IsoDateTimeField()
    content_ref = serializers.CharField(allow_blank=True)
    status = serializers.ChoiceField(
        choices=STATUSES, help_text="The review outcome: new until reviewed."
    )
    tiers = serializers.ListField(child=TierField())
    categories = serializers.ListField(child=CategoryField())
    match_count = serializers.IntegerField(min_value=0, help_text="The matches stored with it.")
    match_total = serializers.IntegerField(
        min_value=0, help_text="Every match the request had before the per-hash cap."
    )
    matches = serializers.ListField(
        child=serializers.DictField(),
        help_text="The results that matched, as POST /api/v1/match answered them at the time.",
    )
    submitted = SubmittedHashSerializer(many=True, help_text="The hashes the request sent.")
    reviewed_at = IsoDateTimeField(allow_null=True)
    review_note = serializers.CharField(allow_blank=True)
    retracted_at = IsoDateTimeField(
        allow_null=True,
        help_text="When every entry it matched through had left the lists (retracted); null if "
        "not retracted.",
    )
    content_link = serializers.SerializerMethodField(
        help_text="content_ref as a link to the organisation's moderation tool (its link "
        "template), or null."
    )
    action = serializers.ChoiceField(
        choices=["block", "review", "none", ""],
        help_text="The strongest action the match policy recommended among its matches.",
    )
    shadow = serializers.BooleanField(
        help_text="Recorded under shadow mode (a list or source being tried): never returned, "
        "sent or queued."
    )
    retroactive = serializers.BooleanField(
        help_text="Found later, when a hash the platform submitted earlier entered a list."
    )
    requested_at = IsoDateTimeField(
        allow_null=True, help_text="For a retroactive detection: when the hash was submitted."
    )
    held = serializers.BooleanField(
        help_text="One of its matches was a hash held for a jump in its match rate."
    )
    preservation = serializers.SerializerMethodField(
        help_text="Whether a preservation hold keeps it past retention, and until when."
    )

    @extend_schema_field(PreservationSerializer)
    def get_preservation(self, detection: Detection) -> dict[str, Any]:
        states = self.context.get("preservation")
        if states is None:
            state = preservation.preservation_state(detection=detection)
        else:
            state = states.get(detection.pk, preservation.NOT_HELD)
        return dict(PreservationSerializer({"held": state.held, "until": state.until}).data)

    @extend_schema_field(serializers.URLField(allow_null=True))
    def get_content_link(self, detection: Detection) -> str | None:
        template = self.context.get("link_template")
        if template is None:
            template = review_links.link_template_of(org=detection.organization)
        return review_links.content_link(template, detection.content_ref)


@extend_schema_serializer(component_name="DetectionsPage")
class DetectionsPageSerializer(serializers.Serializer):
    detections = DetectionSerializer(many=True)
    next_cursor = serializers.CharField(
        allow_null=True, help_text="The cursor of the next page; null on the last page."
    )


@extend_schema_serializer(component_name="DetectionReviewRequest")
class ReviewInputSerializer(serializers.Serializer):
    action = ReviewActionField()
    category = CategoryField(
        required=False,
        allow_null=True,
        help_text="confirm only: the own list (CSAM or SE) the submitted hashes join; by default "
        "the matches' category when they agree.",
    )
    note = serializers.CharField(
        required=False, allow_null=True, allow_blank=True, max_length=review.MAX_NOTE
    )


@extend_schema_serializer(component_name="DetectionReview")
class RefusedHashSerializer(serializers.Serializer):
    type = serializers.CharField()
    value = serializers.CharField()
    code = serializers.CharField()
    message = serializers.CharField()


class ReviewOutputSerializer(serializers.Serializer):
    detection = DetectionSerializer()
    outcome = ReviewActionField()
    category = CategoryField(allow_null=True, help_text="confirm: the list's category.")
    list = serializers.CharField(
        allow_null=True, help_text="confirm: the id of the own list the hashes were added to."
    )
    added = serializers.IntegerField(min_value=0, help_text="confirm: hashes added to the list.")
    already_present = serializers.IntegerField(min_value=0)
    allow_list_added = serializers.IntegerField(
        min_value=0, help_text="false_positive: hashes that joined the allow list."
    )
    allow_list_removed = serializers.IntegerField(
        min_value=0, help_text="confirm: hashes that left the allow list."
    )
    refused = RefusedHashSerializer(
        many=True,
        help_text="confirm: submitted hashes the list refused (e.g. a degenerate PDQ), not added.",
    )


def _org(request: Request) -> Organization:
    return request.organization  # type: ignore[attr-defined]


def _choice(value: Any, allowed: tuple[str, ...], code: str, what: str) -> str:
    if value is None or value == "":
        return ""
    if not isinstance(value, str) or value not in allowed:
        raise ServiceError(
            code, f"{what} must be one of: {', '.join(allowed)}.", {"allowed": list(allowed)}
        )
    return value


def _flag(value: str | None, name: str) -> bool | None:
    """A true/false query parameter; None when absent."""
    if value is None or value == "":
        return None
    if value.lower() not in ("true", "false"):
        raise ServiceError(
            "bad_filter", f"{name} must be true or false.", {"allowed": ["true", "false"]}
        )
    return value.lower() == "true"


def _link_context(request: Request) -> dict[str, Any]:
    return {"link_template": review_links.link_template_of(org=_org(request))}


def _limit(raw: str | None) -> int:
    if raw is None:
        return review.PAGE_SIZE
    if not raw.isascii() or not raw.isdigit() or not 1 <= int(raw) <= review.MAX_PAGE_SIZE:
        raise ServiceError(
            "bad_limit", f"limit must be a whole number from 1 to {review.MAX_PAGE_SIZE}."
        )
    return int(raw)


_DETECTION_ID = OpenApiParameter("detection_id", str, OpenApiParameter.PATH)


class DetectionsApi(OrgAPIView):
    required_scope = "review"

    @extend_schema(
        operation_id="detections_list",
        summary="A page of the organisation's detections, newest first (review)",
        parameters=[
            OpenApiParameter("status", str, enum=STATUSES),
            OpenApiParameter("tier", str, enum=review.TIERS),
            OpenApiParameter("category", str, enum=CATEGORIES),
            OpenApiParameter(
                "shadow",
                bool,
                description="true: only the detections recorded under shadow mode (left out "
                "by default)",
            ),
            OpenApiParameter("retracted", bool, description="only retracted (true) or not (false)"),
            OpenApiParameter(
                "retroactive", bool, description="only retroactive (true) or not (false)"
            ),
            OpenApiParameter("cursor", str, description="next_cursor of the previous page"),
            OpenApiParameter(
                "limit",
                bounded_int(1, review.MAX_PAGE_SIZE),
                description=f"1 to {review.MAX_PAGE_SIZE}, default {review.PAGE_SIZE}",
            ),
            *ERROR_HEADERS,
        ],
        responses={
            200: DetectionsPageSerializer,
            **error_responses(
                {400: ["bad_filter", "bad_limit", "bad_cursor"], 403: ["permission_denied"]}
            ),
        },
        extensions=links(
            {
                200: {
                    "NextPage": link(
                        "detections_list",
                        "The next page (while next_cursor is not null).",
                        cursor="$response.body#/next_cursor",
                    )
                }
            }
        ),
    )
    def get(self, request: Request) -> Response:
        query = request.query_params
        filters = {
            name: _choice(query.get(name), allowed, "bad_filter", name)
            for name, allowed in FILTERS.items()
        }
        flags = {name: _flag(query.get(name), name) for name in FLAGS}
        page = review.detections_page(
            org=_org(request),
            cursor=query.get("cursor", ""),
            limit=_limit(query.get("limit")),
            shadow=bool(flags["shadow"]),
            retracted=flags["retracted"],
            retroactive=flags["retroactive"],
            **filters,
        )
        context = _link_context(request) | {
            "preservation": preservation.preservation_states(detections=page.detections)
        }
        return Response(
            DetectionsPageSerializer(
                {"detections": page.detections, "next_cursor": page.next_cursor},
                context=context,
            ).data
        )


class DetectionApi(OrgAPIView):
    required_scope = "review"

    @extend_schema(
        operation_id="detection_get",
        summary="One of the organisation's detections (review)",
        parameters=[_DETECTION_ID, *ERROR_HEADERS],
        responses={
            200: DetectionSerializer,
            **error_responses({403: ["permission_denied"], 404: ["not_found"]}),
        },
    )
    def get(self, request: Request, detection_id: str) -> Response:
        detection = review.get_detection_for_org(org=_org(request), public_id=detection_id)
        return Response(DetectionSerializer(detection, context=_link_context(request)).data)


def _review_body(request: Request) -> tuple[str, str, str]:
    """(action, category, note) of the body; 400 with a code for anything else."""
    body = request.data
    if not isinstance(body, dict):
        raise ServiceError("invalid_body", 'The body must be a JSON object {"action": …}.')
    action = _choice(body.get("action"), ACTIONS, "bad_action", "action")
    if not action:
        raise ServiceError(
            "bad_action", f"action must be one of: {', '.join(ACTIONS)}.", {"allowed": ACTIONS}
        )
    category = _choice(body.get("category"), CATEGORIES, "bad_category", "category")
    note = body.get("note")
    if note is not None and not isinstance(note, str):
        raise ServiceError("invalid_note", "note must be a string.")
    return action, category, note or ""


class DetectionReviewApi(OrgAPIView):
    required_scope = "review"

    @extend_schema(
        operation_id="detection_review",
        summary="Confirm a detection, mark it a false positive or dismiss it (review)",
        parameters=[_DETECTION_ID, *ERROR_HEADERS],
        request={"application/json": ReviewInputSerializer},
        responses={
            200: ReviewOutputSerializer,
            **error_responses(
                {
                    400: [
                        "invalid_body",
                        "bad_action",
                        "bad_category",
                        "category_required",
                        "invalid_note",
                        "note_too_long",
                    ],
                    403: ["permission_denied"],
                    404: ["not_found"],
                    409: ["no_default_list", "quota_exceeded"],
                },
                body=True,
            ),
        },
        extensions=links(
            {
                200: {
                    "GetDetection": link(
                        "detection_get",
                        "The detection as reviewed.",
                        detection_id="$response.body#/detection/id",
                    )
                }
            }
        ),
    )
    def post(self, request: Request, detection_id: str) -> Response:
        detection = review.get_detection_for_org(org=_org(request), public_id=detection_id)
        action, category, note = _review_body(request)
        actor = Actor.from_request(request)
        result: dict[str, Any] = {
            "outcome": action,
            "category": None,
            "list": None,
            "added": 0,
            "already_present": 0,
            "allow_list_added": 0,
            "allow_list_removed": 0,
            "refused": [],
        }
        if action == "confirm":
            confirmed = review.detection_confirm(
                detection=detection, category=category, note=note, actor=actor
            )
            result |= {
                "category": confirmed.hash_list.category,
                "list": confirmed.hash_list.public_id,
                "added": confirmed.added,
                "already_present": confirmed.already_present,
                "allow_list_removed": confirmed.allow_list_removed,
                "refused": list(confirmed.refused),
            }
        elif action == "false_positive":
            result["allow_list_added"] = review.detection_mark_false_positive(
                detection=detection, note=note, actor=actor
            )
        else:
            review.detection_dismiss(detection=detection, note=note, actor=actor)
        result["detection"] = review.get_detection_for_org(
            org=_org(request), public_id=detection_id
        )
        return Response(ReviewOutputSerializer(result, context=_link_context(request)).data)


# --- preservation holds -------------------------------------------------------------------------


@extend_schema_serializer(component_name="PreservationHold")
class HoldSerializer(serializers.Serializer):
    id = serializers.CharField(source="public_id")
    detection = serializers.CharField(source="detection.public_id", help_text="The detection.")
    placed_at = IsoDateTimeField()
    placed_by = serializers.CharField(source="placed_by_label", help_text="Who placed it.")
    until = IsoDateTimeField(help_text="When it ends by itself.")
    reason = serializers.CharField(allow_blank=True)
    report = serializers.CharField(
        source="report_ref",
        allow_blank=True,
        help_text="The id of the report whose filing placed it; empty for a hold placed by hand.",
    )
    released_at = IsoDateTimeField(allow_null=True, help_text="When it was released by hand.")
    released_by = serializers.CharField(source="released_by_label", allow_blank=True)
    active = serializers.SerializerMethodField(
        help_text="Neither released nor past its end: the purges skip the detection."
    )

    @extend_schema_field(serializers.BooleanField())
    def get_active(self, hold: PreservationHold) -> bool:
        return hold.active_at(self.context.get("now") or timezone.now())


@extend_schema_serializer(component_name="PreservationHolds")
class HoldsSerializer(serializers.Serializer):
    holds = HoldSerializer(many=True, help_text="Newest first, active or not.")


@extend_schema_serializer(component_name="PreservationHoldRequest")
class HoldInputSerializer(serializers.Serializer):
    days = serializers.IntegerField(
        required=False,
        allow_null=True,
        min_value=1,
        max_value=preservation.MAX_HOLD_DAYS,
        help_text="How long it holds, from now; by default the hub's preservation period "
        "(HASHHUB_PRESERVATION_HOLD_DAYS).",
    )
    reason = serializers.CharField(
        required=False, allow_null=True, allow_blank=True, max_length=preservation.MAX_REASON
    )


_HOLD_ID = OpenApiParameter("preservation_id", str, OpenApiParameter.PATH)


def _hold_body(request: Request) -> tuple[int | None, str]:
    """(days, reason) of the body; 400 with a code for anything else (days are checked by
    matching.preservation: ``invalid_days``)."""
    body = request.data
    if body is None or body == "":
        body = {}
    if not isinstance(body, dict):
        raise ServiceError("invalid_body", 'The body must be a JSON object {"days"?, "reason"?}.')
    days = body.get("days")
    reason = body.get("reason")
    if days is not None and (not isinstance(days, int) or isinstance(days, bool)):
        raise ServiceError(
            "invalid_days",
            f"days must be a whole number from 1 to {preservation.MAX_HOLD_DAYS}.",
        )
    if reason is not None and not isinstance(reason, str):
        raise ServiceError("invalid_reason", "reason must be a string.")
    return days, reason or ""


class DetectionHoldsApi(OrgAPIView):
    required_scope = "review"

    @extend_schema(
        operation_id="detection_holds_list",
        summary="The preservation holds of one of the organisation's detections (review)",
        parameters=[_DETECTION_ID, *ERROR_HEADERS],
        responses={
            200: HoldsSerializer,
            **error_responses({403: ["permission_denied"], 404: ["not_found"]}),
        },
    )
    def get(self, request: Request, detection_id: str) -> Response:
        detection = review.get_detection_for_org(org=_org(request), public_id=detection_id)
        holds = preservation.holds_of(detection=detection)
        return Response(HoldsSerializer({"holds": holds}, context={"now": timezone.now()}).data)

    @extend_schema(
        operation_id="detection_hold_place",
        summary="Hold a detection for preservation: the retention purges skip it, its delivery "
        "logs and its kept hashes until the hold ends (review)",
        parameters=[_DETECTION_ID, *ERROR_HEADERS],
        request={"application/json": HoldInputSerializer},
        responses={
            201: HoldSerializer,
            **error_responses(
                {
                    400: ["invalid_body", "invalid_days", "invalid_reason", "reason_too_long"],
                    403: ["permission_denied"],
                    404: ["not_found"],
                },
                body=True,
            ),
        },
        extensions=links(
            {
                201: {
                    "ReleaseHold": link(
                        "detection_hold_release",
                        "Release this hold.",
                        detection_id="$request.path.detection_id",
                        preservation_id="$response.body#/id",
                    )
                }
            }
        ),
    )
    def post(self, request: Request, detection_id: str) -> Response:
        detection = review.get_detection_for_org(org=_org(request), public_id=detection_id)
        days, reason = _hold_body(request)
        hold = preservation.hold_place(
            detection=detection, actor=Actor.from_request(request), days=days, reason=reason
        )
        return Response(HoldSerializer(hold).data, status=status.HTTP_201_CREATED)


class DetectionHoldReleaseApi(OrgAPIView):
    required_scope = "review"

    @extend_schema(
        operation_id="detection_hold_release",
        summary="Release a preservation hold now (review)",
        parameters=[_DETECTION_ID, _HOLD_ID, *ERROR_HEADERS],
        request=None,
        responses={
            200: HoldSerializer,
            **error_responses(
                {403: ["permission_denied"], 404: ["not_found"], 409: ["not_active"]}
            ),
        },
    )
    def post(self, request: Request, detection_id: str, preservation_id: str) -> Response:
        detection = review.get_detection_for_org(org=_org(request), public_id=detection_id)
        hold = preservation.get_hold_for_org(org=_org(request), public_id=preservation_id)
        if hold.detection_id != detection.pk:
            raise Http404("No such hold.")
        released = preservation.hold_release(hold=hold, actor=Actor.from_request(request))
        return Response(HoldSerializer(released).data)
