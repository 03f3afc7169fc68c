"""API v1 of lists that is not about one organisation's lists: the signal types.

Every ``/api/v1/lists/**`` endpoint is sharing.api's: reading a list needs sharing's answer to
who may read it, and lists may not import sharing (DESIGN.md).
"""

from __future__ import annotations

from typing import Any, get_args

from drf_spectacular.utils import extend_schema, extend_schema_field, extend_schema_serializer
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response

from hub.api_base import OrgAPIView
from hub.api_schema import ERROR_HEADERS, error_responses
from lists.hashtypes import SignalKind, all_signal_types
from lists.models import HashList

SIGNAL_TYPES = [t.name for t in all_signal_types()]


@extend_schema_field({"type": "string", "enum": SIGNAL_TYPES}, component_name="SignalType")
class SignalTypeField(serializers.ChoiceField):
    """A signal type's name (``pdq``): one OpenAPI enum wherever the API names a type."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(choices=SIGNAL_TYPES, **kwargs)


@extend_schema_field(
    {"type": "string", "enum": list(HashList.Category.values)}, component_name="Category"
)
class CategoryField(serializers.ChoiceField):
    """A list's category (``csam`` or ``se``)."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(choices=HashList.Category.values, **kwargs)


class HashTypesApi(OrgAPIView):
    @extend_schema_serializer(component_name="HashTypes")
    class OutputSerializer(serializers.Serializer):
        @extend_schema_serializer(component_name="HashType")
        class HashTypeSerializer(serializers.Serializer):
            type = SignalTypeField()
            kind = serializers.ChoiceField(choices=get_args(SignalKind))
            bits = serializers.IntegerField(min_value=8)
            default_max_distance = serializers.IntegerField(min_value=0)
            max_distance = serializers.IntegerField(min_value=0)

        types = HashTypeSerializer(many=True)

    @extend_schema(
        operation_id="hashtypes_list",
        summary="The signal types this hub knows",
        parameters=ERROR_HEADERS,
        responses={200: OutputSerializer, **error_responses()},
    )
    def get(self, request: Request) -> Response:
        types = [t.describe() for t in all_signal_types()]
        return Response(self.OutputSerializer({"types": types}).data)
