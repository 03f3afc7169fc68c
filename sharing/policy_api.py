"""API v1 for an organisation's match policy: ``GET|PUT /api/v1/policy`` and disabled entries.

Reading needs the ``match`` scope (it says how the caller's matches are answered); changing it
needs ``lists:admin``. The rules and their validation live in :mod:`sharing.policy`.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from drf_spectacular.utils import extend_schema, extend_schema_serializer
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response

from hub.api_base import OrgAPIView
from hub.api_schema import ERROR_HEADERS, IsoDateTimeField, error_responses
from hub.audit import Actor
from hub.errors import ServiceError
from hub.models import Organization
from sharing import policy

_ACTIONS = list(policy.ACTIONS)


def _org(request: Request) -> Organization:
    return request.organization  # type: ignore[attr-defined]


class _Thresholds(serializers.DictField):
    child = serializers.IntegerField(min_value=0)


@extend_schema_serializer(component_name="ActionRule")
class ActionRuleSerializer(serializers.Serializer):
    action = serializers.ChoiceField(choices=_ACTIONS)
    tier = serializers.ChoiceField(choices=["verified", "own", "community"], required=False)
    category = serializers.ChoiceField(choices=["csam", "se"], required=False)
    label = serializers.CharField(required=False, max_length=64)  # type: ignore[assignment]
    type = serializers.CharField(required=False)
    max_distance = serializers.IntegerField(required=False, min_value=0, max_value=256)


class PolicySourceSerializer(serializers.Serializer):
    id = serializers.CharField()
    name = serializers.CharField()
    enabled = serializers.BooleanField()
    shadow = serializers.BooleanField()


class PolicyListSerializer(serializers.Serializer):
    id = serializers.CharField()
    name = serializers.CharField()
    category = serializers.ChoiceField(choices=["csam", "se"])
    tier = serializers.ChoiceField(choices=["verified", "own", "community"])
    enabled = serializers.BooleanField()
    shadow = serializers.BooleanField()
    thresholds = _Thresholds()


class _CategorySwitch(serializers.Serializer):
    enabled = serializers.BooleanField()


class PolicyCategoriesSerializer(serializers.Serializer):
    csam = _CategorySwitch()
    se = _CategorySwitch()


@extend_schema_serializer(component_name="DisabledEntry")
class DisabledEntrySerializer(serializers.Serializer):
    id = serializers.CharField()
    list = serializers.CharField()
    type = serializers.CharField()
    value = serializers.CharField()
    until = IsoDateTimeField()
    note = serializers.CharField(allow_blank=True)


@extend_schema_serializer(component_name="Policy")
class PolicySerializer(serializers.Serializer):
    thresholds = _Thresholds()
    server_max_distance = _Thresholds()
    default_action = serializers.ChoiceField(choices=_ACTIONS)
    action_rules = ActionRuleSerializer(many=True)
    dihedral_default = serializers.BooleanField()
    link_template = serializers.CharField(allow_blank=True)
    retroactive_days = serializers.IntegerField(min_value=0, max_value=policy.MAX_RETROACTIVE_DAYS)
    sources = PolicySourceSerializer(many=True)
    categories = PolicyCategoriesSerializer()
    lists = PolicyListSerializer(many=True)
    disabled_entries = DisabledEntrySerializer(many=True)


class _SwitchInput(serializers.Serializer):
    id = serializers.CharField()
    enabled = serializers.BooleanField(required=False)
    shadow = serializers.BooleanField(required=False)


class _ListSwitchInput(_SwitchInput):
    thresholds = _Thresholds(required=False)


@extend_schema_serializer(component_name="PolicyChange")
class PolicyInputSerializer(serializers.Serializer):
    """Every field is optional: what is sent changes, the rest stays."""

    thresholds = _Thresholds(required=False)
    default_action = serializers.ChoiceField(choices=_ACTIONS, required=False)
    action_rules = ActionRuleSerializer(many=True, required=False)
    dihedral_default = serializers.BooleanField(required=False)
    link_template = serializers.CharField(allow_blank=True, required=False)
    retroactive_days = serializers.IntegerField(
        min_value=0, max_value=policy.MAX_RETROACTIVE_DAYS, required=False
    )
    sources = _SwitchInput(many=True, required=False)
    lists = _ListSwitchInput(many=True, required=False)
    categories = serializers.DictField(child=_CategorySwitch(), required=False)


_PUT_ERRORS = [
    "invalid_policy",
    "unknown_policy_field",
    "invalid_thresholds",
    "threshold_too_large",
    "invalid_action_rules",
    "invalid_default_action",
    "invalid_dihedral_default",
    "invalid_link_template",
    "invalid_retroactive_days",
    "invalid_sources",
    "invalid_lists",
    "invalid_categories",
    "unknown_source",
    "unknown_list",
    "own_list_always_matched",
]


class PolicyApi(OrgAPIView):
    def get_required_scope(self) -> str | None:
        return "match" if self.request.method == "GET" else "lists:admin"

    @extend_schema(
        operation_id="policy_read",
        summary="How your organisation matches: sources, lists and categories on or off, "
        "thresholds, shadow mode, recommended actions, disabled entries",
        parameters=ERROR_HEADERS,
        responses={200: PolicySerializer, **error_responses({403: ["permission_denied"]})},
    )
    def get(self, request: Request) -> Response:
        return Response(PolicySerializer(policy.policy_view(org=_org(request))).data)

    @extend_schema(
        operation_id="policy_change",
        summary="Change parts of your match policy (the parts sent; the rest stays)",
        request=PolicyInputSerializer,
        parameters=ERROR_HEADERS,
        responses={
            200: PolicySerializer,
            **error_responses({400: _PUT_ERRORS, 403: ["permission_denied"]}, body=True),
        },
    )
    def put(self, request: Request) -> Response:
        org = _org(request)
        policy.policy_set(org=org, changes=request.data, actor=Actor.from_request(request))
        return Response(PolicySerializer(policy.policy_view(org=org)).data)


def _until(value: object) -> dt.datetime:
    if isinstance(value, str):
        try:
            moment = dt.datetime.fromisoformat(value)
        except ValueError:
            moment = None
        if moment is not None and moment.tzinfo is not None:
            return moment
    raise ServiceError(
        "invalid_until",
        "until must be a moment with its time zone, e.g. 2027-01-31T00:00:00+00:00.",
    )


class DisabledEntriesApi(OrgAPIView):
    required_scope = "lists:admin"

    class InputSerializer(serializers.Serializer):
        list = serializers.CharField()
        type = serializers.CharField()
        value = serializers.CharField()
        until = serializers.DateTimeField()
        note = serializers.CharField(required=False, allow_blank=True, max_length=2000)

    @extend_schema(
        operation_id="policy_entry_disable",
        summary="Stop matching one hash of one list until a date (the export removes it, and "
        "adds it again when the date comes)",
        request=InputSerializer,
        parameters=ERROR_HEADERS,
        responses={
            201: DisabledEntrySerializer,
            **error_responses(
                {
                    400: [
                        "invalid_request",
                        "invalid_until",
                        "until_in_past",
                        "until_too_far",
                        "unknown_list",
                        "invalid_item",
                        "not_in_list",
                        "unknown_type",
                        "bad_length",
                        "bad_characters",
                    ],
                    403: ["permission_denied"],
                },
                body=True,
            ),
        },
    )
    def post(self, request: Request) -> Response:
        data: Any = request.data
        if not isinstance(data, dict):
            raise ServiceError("invalid_request", "The body is a JSON object.")
        note = data.get("note", "")
        if not isinstance(note, str):
            raise ServiceError("invalid_request", "note must be a string.")
        disable = policy.entry_disable(
            org=_org(request),
            list_id=data.get("list"),
            signal_type=data.get("type"),
            value=data.get("value"),
            until=_until(data.get("until")),
            note=note,
            actor=Actor.from_request(request),
        )
        body = policy.disable_view(disable)
        return Response(DisabledEntrySerializer(body).data, status=status.HTTP_201_CREATED)


class DisabledEntryApi(OrgAPIView):
    required_scope = "lists:admin"

    @extend_schema(
        operation_id="policy_entry_enable",
        summary="Match a disabled entry again now (the export adds it back); answers the "
        "entry as it was disabled",
        parameters=ERROR_HEADERS,
        responses={
            200: DisabledEntrySerializer,
            **error_responses({403: ["permission_denied"], 404: ["not_found"]}),
        },
    )
    def delete(self, request: Request, disable_id: str) -> Response:
        disable = policy.entry_enable(
            org=_org(request), public_id=disable_id, actor=Actor.from_request(request)
        )
        return Response(DisabledEntrySerializer(policy.disable_view(disable)).data)
