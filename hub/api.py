"""API endpoints of the hub itself."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema, extend_schema_serializer
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response

from hub.api_base import OrgAPIView
from hub.api_schema import ERROR_HEADERS, IsoDateTimeField, error_responses
from hub.models import ApiKey


class WhoAmIApi(OrgAPIView):
    """Which organisation and key a request authenticates as: an integration's first call."""

    @extend_schema_serializer(component_name="WhoAmI")
    class OutputSerializer(serializers.Serializer):
        @extend_schema_serializer(component_name="WhoAmIOrganization")
        class OrganizationSerializer(serializers.Serializer):
            name = serializers.CharField()
            slug = serializers.SlugField()
            approved = serializers.BooleanField()

        @extend_schema_serializer(component_name="WhoAmIKey")
        class KeySerializer(serializers.Serializer):
            id = serializers.CharField(source="public_id")
            name = serializers.CharField()
            prefix = serializers.CharField()
            scopes = serializers.ListField(child=serializers.ChoiceField(ApiKey.Scope.values))
            expires_at = IsoDateTimeField(allow_null=True)

        organization = OrganizationSerializer()
        key = KeySerializer()

    @extend_schema(
        operation_id="v1_me_retrieve",
        summary="The key's organisation, name and scopes",
        parameters=ERROR_HEADERS,
        responses={200: OutputSerializer, **error_responses()},
    )
    def get(self, request: Request) -> Response:
        key: ApiKey = request.auth  # type: ignore[assignment]
        return Response(self.OutputSerializer({"organization": key.organization, "key": key}).data)
