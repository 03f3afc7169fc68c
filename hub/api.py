"""API endpoints of the hub itself."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response

from hub.api_base import OrgAPIView
from hub.models import ApiKey


class WhoAmIApi(OrgAPIView):
    """Which organisation and key a request authenticates as: an integration's first call."""

    class OutputSerializer(serializers.Serializer):
        organization = serializers.DictField()
        key = serializers.DictField()

    @extend_schema(responses=OutputSerializer, summary="The key's organisation, name and scopes")
    def get(self, request: Request) -> Response:
        key: ApiKey = request.auth  # type: ignore[assignment]
        org = key.organization
        return Response(
            {
                "organization": {"name": org.name, "slug": org.slug, "approved": org.approved},
                "key": {
                    "id": key.public_id,
                    "name": key.name,
                    "prefix": key.prefix,
                    "scopes": key.scopes,
                    "expires_at": key.expires_at.isoformat() if key.expires_at else None,
                },
            }
        )
